using System;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.TestSupport;

namespace RwSplit.OperationsTests.Tool;

/// <summary>Starts a fixture's own PostgreSQL servers (the tool's ports are 25487–25490); locally, no servers means ignored.</summary>
internal static class ToolCluster
{
    /// <summary>A password in every connection string the tool gets (the servers trust local connections and never ask for it): it must never appear in the tool's output.</summary>
    public const string Password = "Tool-Secret-7f3a9c";

    public static async Task<LocalPgCluster> StartAsync(int basePort, int replicas)
    {
        return await TestClusters.StartOrIgnoreAsync(new LocalPgClusterOptions { BasePort = basePort, ReplicaCount = replicas, StartSecondPrimary = false });
    }

    /// <summary>The connection string with the test password added (what an operator keeps in an environment variable or a settings file).</summary>
    public static string WithPassword(string connectionString, string? database = null)
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { Password = Password, Timeout = 5 };
        if (database is not null)
            builder.Database = database;
        return builder.ConnectionString;
    }

    /// <summary>Neither stream of a run contains the password.</summary>
    public static void AssertNoPassword(ToolResult result)
    {
        Assert.That(result.StandardOutput, Does.Not.Contain(Password), "stdout has the password");
        Assert.That(result.StandardError, Does.Not.Contain(Password), "stderr has the password");
    }
}
