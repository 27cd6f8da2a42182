using System;
using System.Collections.Generic;
using System.Security.Cryptography;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.TestSupport;

namespace RwSplit.OperationsTests.WebApi;

/// <summary>The PostgreSQL servers of a web sample fixture, and the environment that points the sample at them.</summary>
internal static class SampleServers
{
    /// <summary>Starts a primary and <paramref name="replicas"/> replicas from <paramref name="basePort"/> (Assert.Ignore locally when PostgreSQL is missing; CI fails).</summary>
    public static async Task<LocalPgCluster> StartAsync(int basePort, int replicas)
    {
        return await TestClusters.StartOrIgnoreAsync(new LocalPgClusterOptions { BasePort = basePort, ReplicaCount = replicas, StartSecondPrimary = false });
    }

    /// <summary>A new random token key, base64, as a secret store would hand it to every instance.</summary>
    public static string NewTokenKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>The sample's configuration, all through environment variables (the instances run without appsettings.json), with the console exporter off.</summary>
    public static Dictionary<string, string> Environment(LocalPgCluster cluster, string tokenKey)
    {
        var environment = new Dictionary<string, string>
        {
            ["RwSplit__Primary"] = cluster.PrimaryConnectionString,
            ["RwSplit__TokenKeys__0"] = tokenKey,
            ["Telemetry__ConsoleExporter"] = "false",
        };
        for (var i = 0; i < cluster.Replicas.Count; i++)
            environment[$"RwSplit__Replicas__{i}"] = cluster.ReplicaConnectionStrings[i];
        return environment;
    }
}
