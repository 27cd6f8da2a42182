using System;
using System.Collections.Frozen;
using System.Collections.Generic;
using BenchmarkDotNet.Attributes;
using RwSplit.PostgreSql;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.Benchmarks;

/// <summary>
/// The per-execution routing work once a text is known: the statement-cache hit, the pure routing decision
/// (<c>Router.Route</c>), and the decision with its inputs gathered from a live connection and data source, as
/// <c>RwSplitCommand</c> does it.
/// </summary>
[MemoryDiagnoser]
public class RoutingBenchmarks
{
    private readonly IReadOnlySet<string> _noProcedures = FrozenSet<string>.Empty;
    private StatementCache _cache = null!;
    private StatementFacts _read;
    private StatementFacts _write;
    private SessionState _session;
    private TopologySnapshot _topology;
    private uint _ticket;
    private RwSplitDataSource _dataSource = null!;
    private RwSplitConnection _connection = null!;

    [GlobalSetup]
    public void Setup()
    {
        _cache = new StatementCache(NpgsqlDialect.Instance.CreateClassifier(_noProcedures), 10_000);
        _cache.Classify(Statements.PgShortRead);
        _cache.Classify(Statements.PgLongRead);
        _read = new StatementFacts(StatementKind.Read, RoutingReason.Read);
        _write = new StatementFacts(StatementKind.Write, RoutingReason.Write);
        _session = SessionState.Fresh;
        _topology = TopologySnapshot.AllAvailable(2);

        _dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(InMemoryDialect.Instance);
            o.Primary = "Server=primary";
            o.Replicas.Add("Server=replica1");
            o.Replicas.Add("Server=replica2");
            o.HealthMonitoring = false;
        });
        _connection = _dataSource.OpenConnection();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _connection.Dispose();
        _dataSource.Dispose();
    }

    /// <summary>A cached text (about 50 characters): one dictionary lookup, hashing the whole text.</summary>
    [Benchmark]
    public StatementClassification StatementCache_Hit_Short() => _cache.Classify(Statements.PgShortRead);

    /// <summary>A cached text of about 1.5 KB: the lookup hashes and compares all of it.</summary>
    [Benchmark]
    public StatementClassification StatementCache_Hit_Long() => _cache.Classify(Statements.PgLongRead);

    /// <summary>The pure decision for a read: round-robin over two available replicas.</summary>
    [Benchmark]
    public RoutingDecision Router_Route_Read() => Router.Route(_read, _session, ReadConsistency.ReadYourWrites, _topology, _ticket++);

    /// <summary>The pure decision for a write: the primary.</summary>
    [Benchmark]
    public RoutingDecision Router_Route_Write() => Router.Route(_write, _session, ReadConsistency.ReadYourWrites, _topology, _ticket++);

    /// <summary>
    /// The decision as a command makes it: the session state of the connection (scopes, ambient transaction), the
    /// topology snapshot of the data source (replica availability), a balancer ticket, then <c>Router.Route</c>.
    /// </summary>
    [Benchmark]
    public RoutingDecision Route_WithLiveInputs()
    {
        var session = RwSplit.Execution.RoutePlanner.Session(_connection, RouteTarget.Auto, RwSplitScope.Capture(), out _);
        var topology = _dataSource.Snapshot();
        var ticket = session.CurrentReplica < 0 ? _dataSource.NextBalancerTicket() : 0;
        return Router.Route(_read, session, ReadConsistency.ReadYourWrites, topology, ticket);
    }
}
