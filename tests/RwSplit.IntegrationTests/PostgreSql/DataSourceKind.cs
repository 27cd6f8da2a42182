using System;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RwSplit.PostgreSql;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>How a test builds its data source: through DI or through the builder. Both must behave the same.</summary>
public enum DataSourceKind
{
    Builder,
    DependencyInjection,
}

internal static class TestDataSources
{
    /// <summary>A data source over the local primary and both replicas, with a unique application name.</summary>
    public static (RwSplitDataSource DataSource, IDisposable? Owner) Create(DataSourceKind kind, string applicationName, Action<RwSplitOptions>? configure = null)
    {
        var cluster = ClusterSetup.Cluster;
        void Configure(RwSplitOptions o)
        {
            o.UseNpgsql();
            o.Primary = WithApplicationName(cluster.PrimaryConnectionString, applicationName);
            foreach (var replica in cluster.ReplicaConnectionStrings)
                o.Replicas.Add(WithApplicationName(replica, applicationName));
            configure?.Invoke(o);
        }

        if (kind == DataSourceKind.Builder)
            return (new RwSplitDataSourceBuilder().Configure(Configure).Build(), null);

        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddReadWriteSplit(Configure);
        var provider = services.BuildServiceProvider();
        return (provider.GetRequiredService<RwSplitDataSource>(), provider);
    }

    public static string WithApplicationName(string connectionString, string applicationName)
        => new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = applicationName }.ConnectionString;
}
