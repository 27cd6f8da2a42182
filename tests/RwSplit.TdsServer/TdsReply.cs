using System;
using System.Collections.Immutable;

namespace RwSplit.Tds;

/// <summary>What the server does with a connection instead of (or while) answering.</summary>
public enum TdsFault
{
    /// <summary>Answer normally.</summary>
    None,

    /// <summary>Close the connection as soon as the request arrived, before doing anything (nothing was applied).</summary>
    DropOnReceipt,

    /// <summary>Apply the request (a transaction request changes the transaction state) and close before any reply byte.</summary>
    LoseReply,

    /// <summary>Send the first result set's metadata and the first N rows, then close the connection.</summary>
    DropAfterRows,

    /// <summary>
    /// Send the first result set's metadata and the first N rows, then send nothing more (an attention is still
    /// acknowledged) until the test closes the connection with <see cref="TdsServer.DropConnections"/>: rows are sure to
    /// have reached the caller before the failure.
    /// </summary>
    StallAfterRows,
}

/// <summary>
/// A scripted answer: result sets, row counts, errors and informational messages in order, then (for RPC) the return
/// status and output parameter values; optionally delayed or cut by a fault. Immutable; combine with <see cref="Then"/>.
/// </summary>
public sealed class TdsReply
{
    private TdsReply(ImmutableList<TdsReplyPart> parts)
    {
        Parts = parts;
    }

    internal ImmutableList<TdsReplyPart> Parts { get; private init; }

    internal int ReturnStatus { get; private init; }

    internal ImmutableDictionary<string, object?> Outputs { get; private init; } = ImmutableDictionary.Create<string, object?>(StringComparer.OrdinalIgnoreCase);

    internal TimeSpan Delay { get; private init; }

    internal TdsFault Fault { get; private init; }

    internal int DropAfterRowCount { get; private init; }

    /// <summary>Nothing but the final DONE (row count none): what <c>SET NOCOUNT ON</c> or an empty batch returns.</summary>
    public static TdsReply Empty { get; } = new([]);

    /// <summary>A result set (followed by a DONE with its row count).</summary>
    public static TdsReply Rows(TdsResultSet resultSet)
    {
        ArgumentNullException.ThrowIfNull(resultSet);
        return new([new TdsReplyPart.ResultSet(resultSet)]);
    }

    /// <summary>One unnamed column of <paramref name="type"/>, one row.</summary>
    public static TdsReply Scalar(TdsType type, object? value) => Rows(TdsResultSet.Scalar(type, value));

    /// <summary>A statement that affected <paramref name="rows"/> rows (DONE with the count).</summary>
    public static TdsReply Affected(long rows) => new([new TdsReplyPart.Count(rows)]);

    /// <summary>An ERROR token (severity 11 or more makes SqlClient throw a <c>SqlException</c>).</summary>
    public static TdsReply Error(int number, string message, byte severity = 16, byte state = 1)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (severity < 11)
            throw new ArgumentOutOfRangeException(nameof(severity), "Errors have severity 11 or more; use Info for messages.");
        return new([new TdsReplyPart.Message(number, state, severity, message, IsError: true)]);
    }

    /// <summary>An INFO token (severity 10 or less: SqlClient raises <c>InfoMessage</c>).</summary>
    public static TdsReply Info(int number, string message, byte state = 1)
        => new([new TdsReplyPart.Message(number, state, 0, message, IsError: false)]);

    /// <summary>SQL Server error 3906, what a readable secondary answers to a write.</summary>
    public static TdsReply ReadOnlyDatabase(string database = "app")
        => Error(3906, $"Failed to update database \"{database}\" because the database is read-only.", 16, 1);

    /// <summary>The connection is closed as soon as the request arrives.</summary>
    public static TdsReply Drop() => new([]) { Fault = TdsFault.DropOnReceipt };

    /// <summary>The request is applied, then the connection closes before any reply byte.</summary>
    public static TdsReply LoseReply() => new([]) { Fault = TdsFault.LoseReply };

    /// <summary>The database changes (ENVCHANGE), as after <c>USE</c>.</summary>
    internal static TdsReply ChangeDatabase(string database) => new([new TdsReplyPart.Database(database)]);

    /// <summary>This reply followed by <paramref name="next"/>'s parts (and its output values, status and faults if set).</summary>
    public TdsReply Then(TdsReply next)
    {
        ArgumentNullException.ThrowIfNull(next);
        return new(Parts.AddRange(next.Parts))
        {
            ReturnStatus = next.ReturnStatus != 0 ? next.ReturnStatus : ReturnStatus,
            Outputs = Outputs.SetItems(next.Outputs),
            Delay = Delay + next.Delay,
            Fault = next.Fault != TdsFault.None ? next.Fault : Fault,
            DropAfterRowCount = next.Fault != TdsFault.None ? next.DropAfterRowCount : DropAfterRowCount,
        };
    }

    /// <summary>For an RPC: the procedure's return status (RETURNSTATUS token; 0 by default).</summary>
    public TdsReply WithReturnStatus(int status) => With(returnStatus: status);

    /// <summary>For an RPC: the value returned for an output parameter (by default its input value comes back).</summary>
    public TdsReply WithOutput(string parameterName, object? value)
    {
        ArgumentException.ThrowIfNullOrEmpty(parameterName);
        return With(outputs: Outputs.SetItem(parameterName.StartsWith('@') ? parameterName : "@" + parameterName, value));
    }

    /// <summary>Waits before answering; an attention (cancel, command timeout) during the wait ends the request.</summary>
    public TdsReply WithDelay(TimeSpan delay) => With(delay: delay);

    /// <summary>Sends the first result set's metadata and <paramref name="rows"/> rows, then closes the connection.</summary>
    /// <remarks>SqlClient may notice the closed connection before the caller read those rows; see <see cref="StallAfterRows"/>.</remarks>
    public TdsReply DropAfterRows(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        return With(fault: TdsFault.DropAfterRows, dropAfterRowCount: rows);
    }

    /// <summary>
    /// Sends the first result set's metadata and <paramref name="rows"/> rows, then stalls until the connection is
    /// dropped (<see cref="TdsServer.DropConnections"/>) or an attention arrives.
    /// </summary>
    public TdsReply StallAfterRows(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        return With(fault: TdsFault.StallAfterRows, dropAfterRowCount: rows);
    }

    private TdsReply With(int? returnStatus = null, ImmutableDictionary<string, object?>? outputs = null, TimeSpan? delay = null, TdsFault? fault = null, int? dropAfterRowCount = null)
        => new(Parts)
        {
            ReturnStatus = returnStatus ?? ReturnStatus,
            Outputs = outputs ?? Outputs,
            Delay = delay ?? Delay,
            Fault = fault ?? Fault,
            DropAfterRowCount = dropAfterRowCount ?? DropAfterRowCount,
        };
}

/// <summary>One element of a reply, in order.</summary>
internal abstract record TdsReplyPart
{
    public sealed record ResultSet(TdsResultSet Rows) : TdsReplyPart;

    public sealed record Count(long Rows) : TdsReplyPart;

    public sealed record Message(int Number, byte State, byte Severity, string Text, bool IsError) : TdsReplyPart;

    public sealed record Database(string Name) : TdsReplyPart;
}
