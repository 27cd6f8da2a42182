using System;
using System.Collections.Generic;
using System.Data.Common;
using RwSplit.Routing;
using RwSplit.Providers;
using RwSplit.Topology;

namespace RwSplit;

/// <summary>
/// Everything RwSplit needs to know about one database engine and its ADO.NET provider: how to connect, how to
/// classify SQL text, and how the engine reports a write that reached a read-only server; how it reports replication
/// (<see cref="Replication"/>) and what distributed transactions need of it (<see cref="TransactionStatements"/>) are
/// role objects of their own. Implemented by the provider
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

    /// <summary>Classifies a command text. Called once per distinct text; the result is cached.</summary>
    /// <param name="commandText">The SQL text of a <see cref="System.Data.CommandType.Text"/> command.</param>
    /// <param name="readOnlyProcedures">
    /// Procedure names the user declared read-only (case-insensitive; with or without schema): an <c>EXEC</c> of one of
    /// them is a read.
    /// </param>
    /// <returns>The classification; <see cref="StatementClassification.Unreadable"/> when the text cannot be read.</returns>
    /// <remarks>Must never throw: text the classifier cannot read is <see cref="StatementKind.Unknown"/>.</remarks>
    public abstract StatementClassification Classify(string commandText, IReadOnlySet<string> readOnlyProcedures);

    /// <summary>
    /// Classifies a call of a stored procedure (<see cref="System.Data.CommandType.StoredProcedure"/>). The default: a read
    /// when the name (with or without schema) is in <paramref name="readOnlyProcedures"/>, else a write.
    /// </summary>
    /// <param name="procedureName">The procedure name as given in the command text.</param>
    /// <param name="readOnlyProcedures">Procedure names the user declared read-only.</param>
    public virtual StatementClassification ClassifyProcedure(string procedureName, IReadOnlySet<string> readOnlyProcedures)
    {
        ArgumentNullException.ThrowIfNull(procedureName);
        ArgumentNullException.ThrowIfNull(readOnlyProcedures);
        var name = procedureName.Trim();
        if (readOnlyProcedures.Contains(name))
            return StatementClassification.PlainRead;
        var dot = name.LastIndexOf('.');
        if (dot >= 0 && readOnlyProcedures.Contains(name[(dot + 1)..]))
            return StatementClassification.PlainRead;
        return new StatementClassification(StatementKind.Write, detail: "stored procedure");
    }

    /// <summary>
    /// Returns <paramref name="connectionString"/> with its server (host and port) replaced by <paramref name="server"/>,
    /// keeping credentials and every other setting. Used by the drop-in connection string's <c>Replicas</c> keyword.
    /// </summary>
    /// <param name="connectionString">The primary's provider connection string.</param>
    /// <param name="server">The replica's server, in the provider's own syntax (<c>sql2,1433</c>; <c>pg2:5432</c>).</param>
    /// <exception cref="NotSupportedException">The dialect has no drop-in connection string.</exception>
    public virtual string WithServer(string connectionString, string server)
        => throw new NotSupportedException($"The {SystemName} dialect does not support the Replicas connection string keyword; configure replicas with RwSplitOptions.Replicas.");

    /// <summary>
    /// For engines whose functions can write (PostgreSQL), a query listing the functions of the connected database: two
    /// columns, the lower-case unqualified name and its volatility code (<c>i</c> immutable, <c>s</c> stable,
    /// <c>v</c> volatile; for overloaded names, the most volatile). RwSplit runs it on the primary on first need and
    /// every <c>FunctionCatalogRefreshInterval</c>; a read calling a volatile or unlisted function goes to the primary.
    /// <see langword="null"/> (the default) when functions cannot write (SQL Server).
    /// </summary>
    public virtual string? FunctionCatalogQuery => null;

    /// <summary>
    /// Functions the engine marks volatile that nevertheless never write (<c>random()</c>, <c>clock_timestamp()</c>), so
    /// a read calling them may run on a replica. Lower-case names.
    /// </summary>
    public virtual IReadOnlyCollection<string> ReadOnlyVolatileFunctions => Array.Empty<string>();

    /// <summary>How the engine reports replication (health probe, positions), or <see langword="null"/>: no health monitoring.</summary>
    public virtual ReplicationQueries? Replication => null;

    /// <summary>
    /// Whether <paramref name="exception"/>, thrown by <paramref name="connection"/>, means the connection or its server
    /// failed (as opposed to an error in the statement or in the caller's input), so that the endpoint is ejected and a
    /// read that returned no row yet is retried on another server. Only a failure the server or the network caused may
    /// count: the default is a timeout or I/O failure, or a provider error or refusal on a connection that is no longer
    /// open; never a client-side error (<see cref="IsClientSideError"/>), even when the provider closed the connection
    /// because of it. Dialects add their engine's connection-loss errors and keep statement errors out.
    /// </summary>
    /// <param name="exception">The exception.</param>
    /// <param name="connection">The provider connection that ran the statement.</param>
    public virtual bool IsConnectionFailure(Exception exception, DbConnection connection)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(connection);
        if (IsClientSideError(exception))
            return false;
        return exception is TimeoutException or System.IO.IOException or System.Net.Sockets.SocketException
               || exception.InnerException is TimeoutException or System.IO.IOException or System.Net.Sockets.SocketException
               || (exception is DbException or InvalidOperationException && connection.State is not System.Data.ConnectionState.Open);
    }

    /// <summary>
    /// Whether <paramref name="exception"/> is the provider refusing the caller's input before or while sending it (a
    /// parameter value it cannot write, a value out of range, an unsupported type): the caller's mistake, which never
    /// counts against a server and is never retried elsewhere.
    /// </summary>
    /// <param name="exception">The exception.</param>
    protected static bool IsClientSideError(Exception exception)
        => exception is InvalidCastException or ArgumentException or FormatException or OverflowException or NotSupportedException;

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

    /// <summary>
    /// Empties the provider's pool of idle connections to the same endpoint as <paramref name="connection"/>, after a
    /// connection to it failed: its other idle connections are likely dead too (server restart, terminated backends), and
    /// the next open should dial anew. The default does nothing.
    /// </summary>
    /// <param name="connection">A connection of the pool to clear (open or not).</param>
    public virtual void ClearPool(DbConnection connection)
    {
    }

    /// <summary>
    /// Whether <paramref name="exception"/> says that the server refused a statement because it is read-only
    /// (PostgreSQL SQLSTATE 25006, SQL Server error 3906). Such a statement did nothing and can be retried on the primary.
    /// </summary>
    /// <param name="exception">The exception thrown by the provider.</param>
    public virtual bool IsReadOnlyViolation(Exception exception) => false;
}
