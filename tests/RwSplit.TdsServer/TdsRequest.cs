using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace RwSplit.Tds;

/// <summary>What a journal entry records.</summary>
public enum TdsRequestKind
{
    /// <summary>A LOGIN7 (after PRELOGIN): a new physical connection.</summary>
    Login,

    /// <summary>A SQL batch (SqlClient: a text command without parameters).</summary>
    SqlBatch,

    /// <summary>An RPC: <c>sp_executesql</c> (a text command with parameters), <c>sp_prepexec</c>, or a stored procedure.</summary>
    Rpc,

    /// <summary>Transaction manager request TM_BEGIN_XACT.</summary>
    BeginTransaction,

    /// <summary>TM_COMMIT_XACT.</summary>
    CommitTransaction,

    /// <summary>TM_ROLLBACK_XACT (a savepoint name in <see cref="TdsRequest.Text"/> when rolling back to one).</summary>
    RollbackTransaction,

    /// <summary>TM_SAVE_XACT (a savepoint).</summary>
    SaveTransaction,

    /// <summary>Another transaction manager request (DTC address, propagate, promote): answered with an error.</summary>
    OtherTransactionRequest,

    /// <summary>An attention (cancel or command timeout).</summary>
    Attention,

    /// <summary>A message the server could not read; <see cref="TdsRequest.Text"/> has the reason and the bytes in hex.</summary>
    Malformed,
}

/// <summary>An RPC parameter as the client sent it.</summary>
public sealed record TdsParameter(string Name, TdsType Type, object? Value, bool IsOutput)
{
    /// <inheritdoc />
    public override string ToString() => $"{Name} {Type}{(IsOutput ? " OUTPUT" : "")} = {TdsRequest.Show(Value)}";
}

/// <summary>The LOGIN7 of a connection.</summary>
public sealed record TdsLogin
{
    public uint TdsVersion { get; init; }

    public int PacketSize { get; init; }

    public uint ClientProgramVersion { get; init; }

    public uint ClientProcessId { get; init; }

    public byte OptionFlags1 { get; init; }

    public byte OptionFlags2 { get; init; }

    /// <summary>TypeFlags; bit 0x20 is fReadOnlyIntent (<c>ApplicationIntent=ReadOnly</c>).</summary>
    public byte TypeFlags { get; init; }

    public byte OptionFlags3 { get; init; }

    /// <summary>Whether the client asked for read-only intent (TypeFlags 0x20).</summary>
    public bool ReadOnlyIntent => (TypeFlags & 0x20) != 0;

    public string HostName { get; init; } = "";

    public string UserName { get; init; } = "";

    public string ApplicationName { get; init; } = "";

    public string ServerName { get; init; } = "";

    public string LibraryName { get; init; } = "";

    public string Language { get; init; } = "";

    public string Database { get; init; } = "";

    /// <summary>The ids of the FEATUREEXT entries the client requested (none is acknowledged).</summary>
    public IReadOnlyList<byte> Features { get; init; } = [];

    /// <summary>PRELOGIN ENCRYPTION option the client sent (0 off, 1 on, 2 not supported, 3 required).</summary>
    public byte EncryptionRequested { get; init; }
}

/// <summary>
/// One journal entry: a request a server received, on which connection, with what it carried, and how it was
/// answered. Tests assert on these to know which server ran what.
/// </summary>
public sealed class TdsRequest
{
    internal TdsRequest(string server, int connectionId, TdsRequestKind kind, TdsLogin? login)
    {
        Server = server;
        ConnectionId = connectionId;
        Kind = kind;
        Login = login;
        ReceivedAt = DateTimeOffset.UtcNow;
    }

    /// <summary>Order of arrival at this server (1, 2, …).</summary>
    public long Sequence { get; internal set; }

    /// <summary>Order of arrival across every server of the process: orders requests that several servers received.</summary>
    public long GlobalSequence { get; internal set; }

    /// <summary>The connection's current database when the request arrived (after any reset the packet asked for).</summary>
    public string Database { get; internal set; } = "";

    /// <summary>The server's name (<c>@@SERVERNAME</c>).</summary>
    public string Server { get; }

    /// <summary>The physical connection (1, 2, … per server, in order of acceptance).</summary>
    public int ConnectionId { get; }

    public TdsRequestKind Kind { get; }

    public DateTimeOffset ReceivedAt { get; }

    /// <summary>The connection's login (for <see cref="TdsRequestKind.Login"/>, the login itself); null before login.</summary>
    public TdsLogin? Login { get; }

    /// <summary>The login's application name (the topology monitor's ends with <c>[rwsplit monitor]</c>).</summary>
    public string ApplicationName => Login?.ApplicationName ?? "";

    /// <summary>
    /// The SQL text: a batch, or the statement of <c>sp_executesql</c> / <c>sp_prepexec</c> / <c>sp_execute</c>; for
    /// transaction requests the transaction or savepoint name; for a malformed message the reason and bytes.
    /// </summary>
    public string? Text { get; internal init; }

    /// <summary>For an RPC, the procedure: its name, or <c>sp_executesql</c> etc. for well-known procedure ids.</summary>
    public string? Procedure { get; internal init; }

    /// <summary>For <c>sp_executesql</c>/<c>sp_prepexec</c>: the parameter declarations (<c>@p int</c>).</summary>
    public string? ParameterDeclarations { get; internal init; }

    /// <summary>The user parameters of an RPC (without the statement and declarations of <c>sp_executesql</c>).</summary>
    public IReadOnlyList<TdsParameter> Parameters { get; internal init; } = [];

    /// <summary>Every RPC parameter in order, including the statement and declarations of sp_executesql.</summary>
    internal IReadOnlyList<TdsParameter> SystemParameters { get; init; } = [];

    /// <summary>The well-known procedure id of the RPC (10 sp_executesql, 13 sp_prepexec …), 0 for a named procedure.</summary>
    internal ushort ProcedureId { get; init; }

    /// <summary>For sp_prepexec / sp_prepare: the handle the server assigned.</summary>
    internal int? PreparedHandle { get; set; }

    /// <summary>The transaction descriptor of the ALL_HEADERS transaction header (0: none).</summary>
    public long TransactionDescriptor { get; internal init; }

    /// <summary>For <see cref="TdsRequestKind.BeginTransaction"/>: the descriptor of the transaction it started.</summary>
    public long? StartedTransaction { get; internal set; }

    /// <summary>For <see cref="TdsRequestKind.BeginTransaction"/>: the TM isolation level byte (0 unchanged, 1 read uncommitted … 5 snapshot).</summary>
    public byte? IsolationLevel { get; internal init; }

    /// <summary>Whether the packet asked for a connection reset first (SqlClient's pooled connection reuse).</summary>
    public bool ResetConnection { get; internal init; }

    /// <summary>How the server answered: the rule, a built-in, <c>unmatched</c>, a fault.</summary>
    public string? Outcome { get; internal set; }

    /// <summary>The value of a parameter by name (with or without <c>@</c>).</summary>
    public object? Parameter(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = name.StartsWith('@') ? name : "@" + name;
        return Parameters.FirstOrDefault(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase))?.Value
               ?? throw new KeyNotFoundException($"No parameter {key} in {this}.");
    }

    /// <summary>Whether this request came from RwSplit's topology monitor (its application name).</summary>
    public bool IsMonitor => ApplicationName.EndsWith("[rwsplit monitor]", StringComparison.Ordinal);

    internal static string Show(object? value) => value switch
    {
        null => "NULL",
        string s => "'" + (s.Length > 100 ? s[..100] + $"…({s.Length} chars)" : s) + "'",
        byte[] b => "0x" + Convert.ToHexString(b),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <inheritdoc />
    public override string ToString()
    {
        var text = Text is null ? "" : " \"" + (Text.Length > 120 ? Text[..120] + "…" : Text).ReplaceLineEndings(" ") + "\"";
        var procedure = Procedure is null ? "" : " " + Procedure;
        var parameters = Parameters.Count == 0 ? "" : " (" + string.Join(", ", Parameters) + ")";
        var transaction = TransactionDescriptor == 0 ? "" : $" tx={TransactionDescriptor:x}";
        var started = StartedTransaction is { } s ? $" -> tx={s:x}" : "";
        var reset = ResetConnection ? " reset" : "";
        return $"{Server}#{Sequence} conn {ConnectionId}{(IsMonitor ? " (monitor)" : "")}: {Kind}{procedure}{text}{parameters}{transaction}{started}{reset} => {Outcome}";
    }
}
