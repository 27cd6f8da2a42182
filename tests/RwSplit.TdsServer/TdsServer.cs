using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.SqlServer;

namespace RwSplit.Tds;

/// <summary>What the server says it is, through the health probe.</summary>
public enum TdsServerRole
{
    /// <summary>A read-write primary (the probe reports <c>is_replica = 0</c>).</summary>
    Primary,

    /// <summary>A readable secondary (the probe reports <c>is_replica = 1</c>).</summary>
    Secondary,
}

/// <summary>
/// The database's local row of <c>sys.dm_hadr_database_replica_states</c> as a login with <c>VIEW SERVER STATE</c> sees
/// it. <see cref="LastCommitLsn"/>: on the primary its last commit; on a secondary the last commit it has received and
/// hardened, and <see cref="LastCommitTime"/> that commit's time on the primary's clock. <see cref="LastRedoneLsn"/>: on a
/// secondary the last log record redo has applied, which is what its readers see (<see langword="null"/>: redo has caught
/// up with hardening; on the primary always null). <see cref="LagSeconds"/> is what the probe's lag column reports.
/// </summary>
public sealed record TdsReplicationState(
    decimal LastCommitLsn,
    decimal? LastRedoneLsn = null,
    double? LagSeconds = null,
    DateTime? LastCommitTime = null,
    string GroupDatabaseId = "7d6c2bd9-0a44-4a8f-9a77-5f8e3c1b2a10")
{
    /// <summary>An LSN as the DMVs show it: <c>numeric(25,0)</c> = VLF sequence × 10^15 + log block × 10^5 + slot.</summary>
    public static decimal Lsn(long vlf, long block, int slot) => (vlf * 1_000_000_000_000_000m) + (block * 100_000m) + slot;

    /// <summary>
    /// The position column of a query over the view, by the column it reads (a secondary's query reading
    /// <c>last_redone_lsn</c> gets redo's position; else <c>last_commit_lsn</c>; a query reading only
    /// <c>last_commit_time</c> gets <c>DATEDIFF_BIG(microsecond, '20000101', last_commit_time)</c>).
    /// </summary>
    internal (TdsType Type, object? Value) PositionFor(string query, bool secondary)
    {
        if (secondary && query.Contains("last_redone_lsn", StringComparison.Ordinal))
            return (TdsType.Decimal(25, 0), LastRedoneLsn ?? LastCommitLsn);
        if (query.Contains("last_commit_lsn", StringComparison.Ordinal))
            return (TdsType.Decimal(25, 0), LastCommitLsn);
        if (query.Contains("last_commit_time", StringComparison.Ordinal))
        {
            var time = LastCommitTime ?? new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
            return (TdsType.BigInt, (time - new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc)).Ticks / 10);
        }

        return (TdsType.BigInt, null);
    }
}

/// <summary>
/// A scripted SQL Server for tests: a TDS 7.4 endpoint on 127.0.0.1 (any free port) that the real
/// Microsoft.Data.SqlClient logs into (PRELOGIN without encryption, LOGIN7) and sends batches, RPCs, transaction manager
/// requests and attentions. Each request is journaled (<see cref="Journal"/>) and answered by the first matching rule
/// (<see cref="On"/>), else by a built-in (<c>SELECT @@SERVERNAME</c>, RwSplit's health and position probes by
/// <see cref="Role"/> and <see cref="Replication"/>, <c>USE</c>), else by error 50000 naming the statement. Fault
/// switches: <see cref="RefuseConnections"/>, <see cref="DropConnections"/>, <see cref="ResponseDelay"/>, and per-reply
/// faults (<see cref="TdsReply.Drop"/>, <see cref="TdsReply.DropAfterRows"/>, <see cref="TdsReply.WithDelay"/>).
/// A message the server cannot read is reported in <see cref="ProtocolErrors"/> (with its bytes in hex) and the
/// connection is closed.
/// </summary>
public sealed class TdsServer : IAsyncDisposable
{
    private static long s_transactions = 0x5E_0000_0000L;

    private static readonly Regex ServerNameQuery = new(@"^\s*SELECT\s+@@SERVERNAME\s*;?\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    private static readonly Regex UseQuery = new(@"^\s*use\s+(?:\[(?<db>[^\]]+)\]|(?<db>[^\s;]+))\s*;?\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    private readonly object _gate = new();
    private readonly List<TdsRule> _rules = [];
    private readonly ConcurrentDictionary<string, byte> _missingDatabases = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<TdsRequest> _journal = [];
    private readonly List<string> _protocolErrors = [];
    private readonly ConcurrentDictionary<int, TdsSession> _sessions = new();
    private readonly ConcurrentDictionary<Task, byte> _sessionTasks = new();
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task? _acceptLoop;
    private int _connectionIds;
    private long _sequence;
    private volatile TdsServerRole _role;
    private volatile TdsReplicationState? _replication;
    private long _delayTicks;

    private TdsServer(string name, TdsServerRole role)
    {
        Name = name;
        _role = role;
    }

    /// <summary>Starts a server listening on 127.0.0.1 on a free port.</summary>
    /// <param name="name">The server's identity (answers <c>SELECT @@SERVERNAME</c>, signs its errors).</param>
    /// <param name="role">Primary or readable secondary, as the health probe reports it.</param>
    public static TdsServer Start(string name, TdsServerRole role = TdsServerRole.Primary)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var server = new TdsServer(name, role);
        server.Listen(0);
        return server;
    }

    public string Name { get; }

    /// <summary>The port (fixed for the server's life, also across <see cref="RefuseConnections"/>).</summary>
    public int Port { get; private set; }

    /// <summary>SqlClient's <c>Data Source</c>: <c>127.0.0.1,port</c>.</summary>
    public string DataSource => $"127.0.0.1,{Port}";

    /// <summary>Primary or readable secondary (changeable at any time, e.g. to simulate a failover).</summary>
    public TdsServerRole Role
    {
        get => _role;
        set => _role = value;
    }

    /// <summary>
    /// <see langword="null"/> (the default): the login has no <c>VIEW SERVER STATE</c>, so the health probe reports only the
    /// role and the position queries return NULL. Otherwise the availability-group state the probes report.
    /// </summary>
    public TdsReplicationState? Replication
    {
        get => _replication;
        set => _replication = value;
    }

    /// <summary>Refuse logins without read-only intent with error 978, as a read-intent-only secondary does.</summary>
    public bool RequireReadOnlyIntent { get; set; }

    /// <summary>
    /// Databases that do not exist (case-insensitive): a login to one fails with error 4060 ("Cannot open database ...
    /// requested by the login"), as SQL Server's does. A test adds and removes names as it creates and drops them.
    /// </summary>
    public void SetDatabaseMissing(string database, bool missing)
    {
        if (missing)
            _missingDatabases[database] = 0;
        else
            _missingDatabases.TryRemove(database, out _);
    }

    internal bool IsMissing(string database) => _missingDatabases.ContainsKey(database);

    /// <summary>A delay before answering every request (batch, RPC, transaction request); an attention ends the wait.</summary>
    public TimeSpan ResponseDelay
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _delayTicks));
        set => Interlocked.Exchange(ref _delayTicks, value.Ticks);
    }

    /// <summary>
    /// While <see langword="true"/> the server does not listen: connection attempts are refused by the operating system
    /// (open connections stay; see <see cref="DropConnections"/>). Setting it back listens again on the same port.
    /// </summary>
    public bool RefuseConnections
    {
        get
        {
            lock (_gate)
                return _listener is null;
        }

        set
        {
            lock (_gate)
            {
                if (value && _listener is not null)
                {
                    _listener.Dispose();
                    _listener = null;
                }
                else if (!value && _listener is null)
                {
                    Listen(Port);
                }
            }
        }
    }

    /// <summary>Physical connections open now.</summary>
    public int OpenConnections => _sessions.Count;

    /// <summary>A SqlClient connection string for this server: no encryption, short connect timeout, SQL login.</summary>
    /// <param name="database">Initial Catalog.</param>
    public string ConnectionString(string database = "app")
        => $"Data Source={DataSource};Initial Catalog={database};User ID=app;Password=app-password;Encrypt=False;Connect Timeout=5";

    /// <summary>Adds a rule; rules are tried in the order added, before the built-ins.</summary>
    public TdsRuleBuilder On(TdsMatch match)
    {
        ArgumentNullException.ThrowIfNull(match);
        return new TdsRuleBuilder(this, match);
    }

    /// <summary>Answers the exact SQL text <paramref name="text"/> with <paramref name="reply"/>.</summary>
    public TdsRule OnText(string text, TdsReply reply) => On(TdsMatch.Exact(text)).Reply(reply);

    /// <summary>Answers calls of the stored procedure <paramref name="name"/> with <paramref name="reply"/>.</summary>
    public TdsRule OnProcedure(string name, TdsReply reply) => On(TdsMatch.Procedure(name)).Reply(reply);

    internal TdsRule AddRule(TdsRule rule)
    {
        lock (_gate)
            _rules.Add(rule);
        return rule;
    }

    /// <summary>Every request received so far, in order of arrival.</summary>
    public IReadOnlyList<TdsRequest> Journal
    {
        get
        {
            lock (_gate)
                return _journal.ToArray();
        }
    }

    /// <summary>The journal without the topology monitor's connections and without logins and attentions.</summary>
    public IReadOnlyList<TdsRequest> ApplicationRequests
        => Journal.Where(r => !r.IsMonitor && r.Kind is not (TdsRequestKind.Login or TdsRequestKind.Attention)).ToArray();

    /// <summary>SQL texts (batches and sp_executesql statements) and procedure calls of application connections, in order.</summary>
    public IReadOnlyList<string> Statements
        => ApplicationRequests.Where(r => r.Kind is TdsRequestKind.SqlBatch or TdsRequestKind.Rpc).Select(r => r.Text ?? r.Procedure ?? "").ToArray();

    /// <summary>Logins of application connections (not the monitor's).</summary>
    public IReadOnlyList<TdsRequest> ApplicationLogins
        => Journal.Where(r => r.Kind == TdsRequestKind.Login && !r.IsMonitor).ToArray();

    /// <summary>Every malformed message and internal failure, with the offending bytes in hex.</summary>
    public IReadOnlyList<string> ProtocolErrors
    {
        get
        {
            lock (_gate)
                return _protocolErrors.ToArray();
        }
    }

    /// <summary>Forgets reported protocol errors (after a test that provoked them on purpose).</summary>
    public void ClearProtocolErrors()
    {
        lock (_gate)
            _protocolErrors.Clear();
    }

    public void ClearJournal()
    {
        lock (_gate)
            _journal.Clear();
    }

    /// <summary>Closes every open connection now (clients see a transport error on their next read or write).</summary>
    public void DropConnections()
    {
        foreach (var session in _sessions.Values)
            session.Abort();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({Role}) on {DataSource}";

    /// <summary>The journal, one request per line (for assertion messages).</summary>
    public string Dump() => string.Join(Environment.NewLine, Journal.Select(r => r.ToString()));

    private void Listen(int port)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
            listener.Listen(64);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        Port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        _listener = listener;
        _acceptLoop = AcceptAsync(listener);
    }

    private async Task AcceptAsync(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return; // stopped listening (refusal or disposal)
            }

            socket.NoDelay = true;
            var session = new TdsSession(this, socket, Interlocked.Increment(ref _connectionIds), _stopping.Token);
            _sessions[session.Id] = session;
            var task = RunSessionAsync(session);
            _sessionTasks[task] = 0;
            _ = task.ContinueWith(t => _sessionTasks.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    private async Task RunSessionAsync(TdsSession session)
    {
        try
        {
            await session.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            _sessions.TryRemove(session.Id, out _);
        }
    }

    internal void Record(TdsRequest request, string database)
    {
        request.Sequence = Interlocked.Increment(ref _sequence);
        request.GlobalSequence = Interlocked.Increment(ref s_globalSequence);
        request.Database = database;
        lock (_gate)
            _journal.Add(request);
    }

    internal void ReportProtocolError(TdsSession session, string message)
    {
        lock (_gate)
            _protocolErrors.Add($"{Name} connection {session.Id}: {message}");
    }

    private static long s_globalSequence;

    internal static long NextTransactionDescriptor() => Interlocked.Increment(ref s_transactions);

    /// <summary>The user rule answering a request, if any.</summary>
    internal TdsRule? FindRule(TdsRequest request)
    {
        TdsRule[] rules;
        lock (_gate)
            rules = _rules.ToArray();
        foreach (var rule in rules)
        {
            if (rule.TryTake(request))
                return rule;
        }

        return null;
    }

    /// <summary>The reply to a batch or RPC: a rule, a built-in, or the "no rule" error. Sets the request's outcome.</summary>
    internal TdsReply Resolve(TdsRequest request)
    {
        var rule = FindRule(request);
        if (rule is not null)
        {
            request.Outcome = "rule: " + rule.Match.Description;
            try
            {
                return rule.Reply(request);
            }
#pragma warning disable CA1031 // A test script's exception becomes an error reply and a reported problem, never a hang.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                ReportScriptError(request, ex);
                return TdsReply.Error(50000, $"The reply script of rule '{rule.Match.Description}' on test server '{Name}' threw {ex.GetType().Name}: {ex.Message}");
            }
        }

        if (request.Text is { } text)
        {
            if (ServerNameQuery.IsMatch(text))
            {
                request.Outcome = "built-in: @@SERVERNAME";
                return TdsReply.Scalar(TdsType.NVarChar(128), Name);
            }

            var dialect = SqlServerDialect.Instance;
            if (string.Equals(text, dialect.Replication!.HealthProbeQuery, StringComparison.Ordinal))
            {
                request.Outcome = "built-in: health probe";
                return HealthProbeReply();
            }

            if (string.Equals(text, dialect.Replication!.WritePositionQuery, StringComparison.Ordinal) || string.Equals(text, dialect.Replication!.ReplayPositionQuery, StringComparison.Ordinal))
            {
                request.Outcome = "built-in: position";
                var (type, value) = Replication?.PositionFor(text, Role == TdsServerRole.Secondary) ?? (TdsType.Decimal(25, 0), null);
                return TdsReply.Scalar(type, value);
            }

            if (UseQuery.Match(text) is { Success: true } use)
            {
                request.Outcome = "built-in: USE";
                return TdsReply.ChangeDatabase(use.Groups["db"].Value);
            }
        }

        request.Outcome = "unmatched";
        var what = request.Kind == TdsRequestKind.SqlBatch ? "SQL batch"
            : request.Text is not null ? $"RPC {request.Procedure}"
            : $"call of procedure {request.Procedure}";
        var shown = request.Text ?? request.Procedure ?? "";
        if (shown.Length > 300)
            shown = shown[..300] + "…";
        return TdsReply.Error(50000, $"Test server '{Name}' ({Role}) has no rule for this {what}: \"{shown}\". Script it with server.On(...).Reply(...).");
    }

    internal void ReportScriptError(TdsRequest request, Exception ex)
    {
        lock (_gate)
            _protocolErrors.Add($"{Name}: the script failed for {request}: {ex}");
    }

    /// <summary>
    /// The dialect's probe row: (bit is_replica, position by <see cref="TdsReplicationState.PositionFor"/>, lag, nvarchar(36) identity). Without VIEW SERVER STATE
    /// the probe's ELSE branch: NULL position, float lag and identity. With it: the AG view's values, the lag as the
    /// numeric(26,6) that <c>DATEDIFF_BIG(...) / 1000.0</c> yields (NULL on the primary).
    /// </summary>
    private TdsReply HealthProbeReply()
    {
        var replica = Role == TdsServerRole.Secondary;
        if (Replication is not { } state)
        {
            return TdsReply.Rows(new TdsResultSet(
                    new TdsColumn("", TdsType.Bit), new TdsColumn("", TdsType.Decimal(25, 0)), new TdsColumn("", TdsType.Float), new TdsColumn("", TdsType.NVarChar(36)))
                .Row(replica, null, null, null));
        }

        var (positionType, position) = state.PositionFor(SqlServerDialect.Instance.Replication.HealthProbeQuery!, replica);
        return TdsReply.Rows(new TdsResultSet(
                new TdsColumn("", TdsType.Bit), new TdsColumn("", positionType), new TdsColumn("", TdsType.Decimal(26, 6)), new TdsColumn("", TdsType.NVarChar(36)))
            .Row(replica, position, replica ? (object?)(decimal?)state.LagSeconds : null, state.GroupDatabaseId));
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        lock (_gate)
        {
            _listener?.Dispose();
            _listener = null;
        }

        DropConnections();
        var pending = _sessionTasks.Keys.ToArray();
        if (_acceptLoop is not null)
            pending = [.. pending, _acceptLoop];
        try
        {
            await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            lock (_gate)
                _protocolErrors.Add($"{Name}: connections did not close within 5 s of disposal");
        }

        _stopping.Dispose();
    }
}
