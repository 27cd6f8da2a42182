using System.Data.Common;
using System.Linq;
using Npgsql;
using RwSplit.PostgreSql;

namespace RwSplit.ConformanceTests;

/// <summary>The two implementations every conformance test runs against.</summary>
public enum Provider
{
    /// <summary>Npgsql itself, on the primary: the oracle.</summary>
    Npgsql,

    /// <summary>RwSplit's drop-in factory over Npgsql: the primary plus its replica.</summary>
    RwSplit,
}

internal static class Providers
{
    public static DbProviderFactory Factory(Provider provider) => provider == Provider.Npgsql ? NpgsqlFactory.Instance : RwSplitNpgsql.Factory;

    /// <summary>The connection string each is opened with: the primary's; RwSplit's adds the replica (its drop-in form).</summary>
    public static string ConnectionString(Provider provider)
    {
        var primary = Servers.Cluster.PrimaryConnectionString;
        if (provider == Provider.Npgsql)
            return primary;
        var replicas = string.Join('|', Servers.Cluster.ReplicaConnectionStrings.Select(r => new NpgsqlConnectionStringBuilder(r)).Select(b => $"{b.Host}:{b.Port}"));
        return $"{primary};Replicas={replicas}";
    }
}

/// <summary>Makes a fixture run once per <see cref="Provider"/>: the oracle first, then RwSplit.</summary>
[System.AttributeUsage(System.AttributeTargets.Class, Inherited = false)]
public sealed class EveryProviderAttribute : NUnit.Framework.NUnitAttribute, NUnit.Framework.Interfaces.IFixtureBuilder2
{
    public System.Collections.Generic.IEnumerable<NUnit.Framework.Internal.TestSuite> BuildFrom(NUnit.Framework.Interfaces.ITypeInfo typeInfo)
        => BuildFrom(typeInfo, new Everything());

    public System.Collections.Generic.IEnumerable<NUnit.Framework.Internal.TestSuite> BuildFrom(NUnit.Framework.Interfaces.ITypeInfo typeInfo, NUnit.Framework.Interfaces.IPreFilter filter)
    {
        var builder = new NUnit.Framework.Internal.Builders.NUnitTestFixtureBuilder();
        foreach (var provider in new[] { Provider.Npgsql, Provider.RwSplit })
            yield return builder.BuildFrom(typeInfo, filter, new NUnit.Framework.TestFixtureData(provider));
    }
}

/// <summary>A pre-filter that keeps every test (NUnit's own empty one is internal).</summary>
internal sealed class Everything : NUnit.Framework.Interfaces.IPreFilter
{
    public bool IsMatch(System.Type type) => true;

    public bool IsMatch(System.Type type, System.Reflection.MethodInfo method) => true;
}
