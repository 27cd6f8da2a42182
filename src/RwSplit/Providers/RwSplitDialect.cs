using System;
using System.Collections.Generic;
using System.Data.Common;
using RwSplit.Routing;
using RwSplit.Providers;
using RwSplit.Topology;

namespace RwSplit;

/// <summary>
/// Everything RwSplit needs to know about one database engine and its ADO.NET provider. The dialect itself knows how to
/// connect (connection strings, endpoints, connectors); each other concern is a role object of its own, in
/// <c>RwSplit.Providers</c>: how SQL is read for routing (<see cref="CreateClassifier"/>), how failures are reported
/// (<see cref="Failures"/>), how replication is reported (<see cref="Replication"/>) and what distributed transactions
/// need (<see cref="TransactionStatements"/>). Implemented by the provider
/// packages (<c>RwSplit.SqlServer</c>, <c>RwSplit.PostgreSql</c>); selected with <c>UseSqlServer()</c> /
/// <c>UseNpgsql()</c> on <c>RwSplitOptions</c>.
/// </summary>
public abstract class RwSplitDialect
{
    /// <summary>Initializes the dialect.</summary>
    protected RwSplitDialect()
    {
    }

    /// <summary>The OpenTelemetry <c>db.system.name</c> of the engine, such as <c>postgresql</c> or <c>microsoft.sql_server</c>.</summary>
    public abstract string SystemName { get; }

    /// <summary>The inner provider's factory, used to create the provider's own commands and parameters.</summary>
    public abstract DbProviderFactory ProviderFactory { get; }

    /// <summary>
    /// Whether <paramref name="other"/> is a dialect of the same provider: the same instance, or another instance over
    /// the same provider factory (a data source with a provider builder hook has a dialect instance of its own). Commands,
    /// batches and connections of such dialects work together.
    /// </summary>
    internal bool IsSameProvider(RwSplitDialect other) => ReferenceEquals(this, other) || ReferenceEquals(ProviderFactory, other.ProviderFactory);

    /// <summary>
    /// Parses and validates one provider connection string and returns the server it names, without connecting.
    /// </summary>
    /// <param name="connectionString">The provider connection string.</param>
    /// <returns>The endpoint's identity (host, port, database), free of secrets.</returns>
    /// <exception cref="ArgumentException">The connection string is malformed; the message names the fix and no secret.</exception>
    public abstract EndpointAddress ParseEndpoint(string connectionString);

    /// <summary>
    /// Creates the object that opens physical connections to one endpoint. Implementations force the provider not to
    /// enlist in ambient transactions by itself (<c>Enlist=false</c>): RwSplit enlists explicitly.
    /// </summary>
    /// <param name="connectionString">A connection string that <see cref="ParseEndpoint"/> accepted.</param>
    /// <param name="role">The role the endpoint is configured for.</param>
    public abstract EndpointConnector CreateConnector(string connectionString, EndpointRole role);

    /// <summary>
    /// Creates the connector of one endpoint of the data source named <paramref name="dataSourceName"/>; a provider
    /// that names its own pools (Npgsql's data sources) names this one after it, the role and the address, so that the
    /// provider's own metrics say which endpoint they measure. By default <see cref="CreateConnector(string, EndpointRole)"/>.
    /// </summary>
    /// <param name="connectionString">A connection string that <see cref="ParseEndpoint"/> accepted.</param>
    /// <param name="role">The role the endpoint is configured for.</param>
    /// <param name="dataSourceName">The RwSplit data source's <see cref="RwSplitOptions.Name"/>.</param>
    public virtual EndpointConnector CreateConnector(string connectionString, EndpointRole role, string dataSourceName)
        => CreateConnector(connectionString, role);

    /// <summary>
    /// Creates the classifier of one data source: how this engine's command texts and procedure calls are read for
    /// routing, with the procedures that data source declared read-only.
    /// </summary>
    /// <param name="readOnlyProcedures">
    /// Procedure names the user declared read-only (case-insensitive; with or without schema): a call of one of them is
    /// a read.
    /// </param>
    public abstract StatementClassifier CreateClassifier(IReadOnlySet<string> readOnlyProcedures);

    /// <summary>
    /// Returns <paramref name="connectionString"/> with its server (host and port) replaced by <paramref name="server"/>,
    /// keeping credentials and every other setting. Used by the drop-in connection string's <c>Replicas</c> keyword.
    /// </summary>
    /// <param name="connectionString">The primary's provider connection string.</param>
    /// <param name="server">The replica's server, in the provider's own syntax (<c>sql2,1433</c>; <c>pg2:5432</c>).</param>
    /// <exception cref="NotSupportedException">The dialect has no drop-in connection string.</exception>
    public virtual string WithServer(string connectionString, string server)
        => throw new NotSupportedException($"The {SystemName} dialect does not support the Replicas connection string keyword; configure replicas with RwSplitOptions.Replicas.");

    /// <summary>How the engine reports replication (health probe, positions), or <see langword="null"/>: no health monitoring.</summary>
    public virtual ReplicationQueries? Replication => null;

    /// <summary>
    /// How the engine and its provider report failures (connection loss, a read-only server's refusal) and how the
    /// provider's pool is emptied after one. Default: <see cref="FailureRules.Default"/>.
    /// </summary>
    public virtual FailureRules Failures => FailureRules.Default;

    /// <summary>
    /// Whether a session command (<c>SET</c>) run inside a transaction is undone when the transaction rolls back
    /// (PostgreSQL: yes; SQL Server: no). When <see langword="true"/>, RwSplit replays such a command on the session's
    /// other physical connections only once the transaction commits. Default: <see langword="false"/>.
    /// </summary>
    public virtual bool RevertsSessionCommandsOnRollback => false;

    /// <summary>
    /// The statements distributed transactions and recovery need of the engine, or <see langword="null"/> when it takes
    /// no part in them.
    /// </summary>
    public virtual TransactionStatements? TransactionStatements => null;

    /// <summary>The distributed-transaction statements, for the coordinator and recovery (which run only where the dialect has them).</summary>
    internal TransactionStatements Distributed
        => TransactionStatements ?? throw new NotSupportedException($"{SystemName} takes no part in distributed transactions (its dialect has no TransactionStatements).");

    /// <summary>Whether the engine can prepare a transaction (<see cref="TransactionStatements.CanPrepare"/>).</summary>
    internal bool CanPrepare => TransactionStatements?.CanPrepare == true;

    /// <summary>
    /// The key under which branches share one physical connection: by default the database (one branch per database);
    /// engines that cannot prepare coalesce every database of one instance into one branch (switching database per command).
    /// </summary>
    /// <param name="address">The endpoint.</param>
    public virtual string BranchKey(EndpointAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return CanPrepare ? address.ToString() : $"{address.Host}:{address.Port}";
    }
}
