using System;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.PgCluster;

namespace RwSplit.TestSupport;

/// <summary>Starting the PostgreSQL servers of a test fixture, the same way in every test project.</summary>
public static class TestClusters
{
    /// <summary>Whether the run is CI's (<c>CI=true</c>), where missing servers fail the tests instead of skipping them.</summary>
    public static bool IsCI => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The primary's password, or a marker that cannot occur when the cluster trusts local connections: for checks that
    /// it never leaks into output, logs or telemetry.
    /// </summary>
    public static string PasswordOf(LocalPgCluster cluster)
        => new Npgsql.NpgsqlConnectionStringBuilder(cluster.PrimaryConnectionString).Password is { Length: > 0 } p ? p : "\0no password\0";

    /// <summary>
    /// Starts the servers <paramref name="options"/> describe. When they cannot be started, the fixture's tests are
    /// ignored with the reason and its fix — except under CI, where the failure stands.
    /// </summary>
    public static async Task<LocalPgCluster> StartOrIgnoreAsync(LocalPgClusterOptions? options = null)
    {
        try
        {
            return await LocalPgCluster.StartAsync(options);
        }
        catch (Exception ex) when (!IsCI)
        {
            Assert.Ignore($"PostgreSQL servers could not be started ({ex.Message}). Install PostgreSQL server binaries, or point RWSPLIT_PG_PRIMARY / RWSPLIT_PG_REPLICAS at running servers.");
            throw; // not reached: Assert.Ignore throws
        }
    }
}
