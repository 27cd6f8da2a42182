using System;
using System.Collections.Generic;
using System.Data.Common;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit;

/// <summary>
/// Everything RwSplit needs to know about one database engine and its ADO.NET provider: how to connect, how to
/// classify SQL text, and how the engine reports a write that reached a read-only server. Implemented by the provider
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

    /// <summary>
    /// The health probe the topology monitor runs on every endpoint, or <see langword="null"/> to only check that a
    /// connection opens. One row of four columns: (0) <c>bool</c> whether the server is a read-only replica; (1)
    /// its replication position (a <c>bigint</c>, or what <see cref="ToPosition"/> maps), comparable across the replica
    /// set and increasing (on a replica the replayed position, on the primary the written one), or null; (2)
    /// <c>double</c> seconds since the last replayed commit on a replica, or null; (3) text identifying the replica set (the same on the primary and every replica,
    /// different for another cluster), or null.
    /// </summary>
    public virtual string? HealthProbeQuery => null;

    /// <summary>One value (see <see cref="ToPosition"/>): the primary's current write position (read-your-writes watermark), or null if unknown.</summary>
    public virtual string? WritePositionQuery => null;

    /// <summary>One value (see <see cref="ToPosition"/>): a replica's replayed position, polled while a read waits for a replica to catch up.</summary>
    public virtual string? ReplayPositionQuery => null;

    /// <summary>
    /// The position a value of the probe's position column or of a position query denotes (see
    /// <see cref="HealthProbeQuery"/>), or <see langword="null"/> if it denotes none. The default converts an integer;
    /// a dialect whose engine reports positions in another form (SQL Server's <c>numeric(25,0)</c> LSNs) maps them here,
    /// keeping their order.
    /// </summary>
    /// <param name="value">The value the server returned (never <see cref="DBNull"/>).</param>
    public virtual long? ToPosition(object? value)
        => value is null or DBNull ? null : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);

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

    // ---- Distributed transactions ----

    /// <summary>
    /// Whether the engine can prepare a transaction and commit it later from any session (PostgreSQL
    /// <c>PREPARE TRANSACTION</c>). When <see langword="false"/> (SQL Server outside MSDTC), a branch of this engine can only
    /// be the last resource of a distributed transaction.
    /// </summary>
    public virtual bool SupportsTwoPhaseCommit => false;

    /// <summary>Prepares the session's transaction under <paramref name="gid"/> (it survives the session and a restart).</summary>
    /// <param name="gid">The branch id (letters, digits, <c>:</c> and <c>-</c> only).</param>
    public virtual string PrepareTransactionSql(string gid) => throw new NotSupportedException($"{SystemName} cannot prepare transactions.");

    /// <summary>Commits a prepared transaction.</summary>
    /// <param name="gid">The branch id.</param>
    public virtual string CommitPreparedSql(string gid) => throw new NotSupportedException($"{SystemName} cannot prepare transactions.");

    /// <summary>Rolls back a prepared transaction.</summary>
    /// <param name="gid">The branch id.</param>
    public virtual string RollbackPreparedSql(string gid) => throw new NotSupportedException($"{SystemName} cannot prepare transactions.");

    /// <summary>
    /// Lists RwSplit's prepared transactions of the connected database: rows of (branch id, seconds since prepared).
    /// Prepared transactions whose id starts with <c>rws:</c>.
    /// </summary>
    public virtual string? ListPreparedTransactionsSql => null;

    /// <summary>Returns one integer: how many prepared transactions the server allows (0: prepared transactions are disabled).</summary>
    public virtual string? MaxPreparedTransactionsSql => null;

    /// <summary>One text value identifying the connected database across processes (same on every connection to it).</summary>
    public virtual string DatabaseIdentitySql => throw new NotSupportedException($"{SystemName} does not identify databases for distributed transactions.");

    /// <summary>
    /// Creates the decision table if it does not exist: <c>rwsplit_decisions (gtrid text primary key, outcome char(1):
    /// 'c' commit, 'a' abort fence or 'h' heuristic marker/expectation, coordinator text, created timestamp)</c>.
    /// </summary>
    public virtual string CreateDecisionTableSql => throw new NotSupportedException($"{SystemName} has no decision table.");

    /// <summary>Inserts a decision row; parameters <c>@gtrid</c>, <c>@outcome</c>, <c>@coordinator</c>. Fails on a duplicate key.</summary>
    public virtual string InsertDecisionSql => "INSERT INTO rwsplit_decisions (gtrid, outcome, coordinator) VALUES (@gtrid, @outcome, @coordinator)";

    /// <summary>
    /// Whether the coordinator prepares its decision insert (<see cref="System.Data.Common.DbCommand.Prepare"/>) on the
    /// last resource's connection: worth it where the provider keeps prepared statements per pooled physical connection
    /// and prepares without explicit parameter sizes (Npgsql). Default: <see langword="false"/>.
    /// </summary>
    public virtual bool PrepareCoordinatorStatements => false;

    /// <summary>Reads a decision; parameter <c>@gtrid</c>; one row with the outcome character, or none.</summary>
    public virtual string SelectDecisionSql => "SELECT outcome FROM rwsplit_decisions WHERE gtrid = @gtrid";

    /// <summary>Deletes one decision-table row; parameter <c>@gtrid</c>.</summary>
    public virtual string DeleteDecisionSql => "DELETE FROM rwsplit_decisions WHERE gtrid = @gtrid";

    /// <summary>
    /// Lists the heuristic-participant expectations recorded in this database's decision table (outcome <c>'h'</c>, id
    /// <c>{gtrid}:expect:{participant key}</c>): rows of (id, seconds since written). <see langword="null"/> for engines
    /// that never hold such rows (they can prepare, so a transaction never needs a heuristic participant).
    /// </summary>
    public virtual string? ListHeuristicExpectationsSql => null;

    /// <summary>Deletes decisions older than <c>@days</c> days (housekeeping).</summary>
    public virtual string? PurgeDecisionsSql => null;

    /// <summary>Whether <paramref name="exception"/> is a duplicate-key violation (a decision or fence already exists).</summary>
    /// <param name="exception">The exception.</param>
    public virtual bool IsUniqueViolation(Exception exception) => false;

    /// <summary>
    /// The key under which branches share one physical connection: by default the database (one branch per database);
    /// engines that cannot prepare coalesce every database of one instance into one branch (switching database per command).
    /// </summary>
    /// <param name="address">The endpoint.</param>
    public virtual string BranchKey(EndpointAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return SupportsTwoPhaseCommit ? address.ToString() : $"{address.Host}:{address.Port}";
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
