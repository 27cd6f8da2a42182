using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Diagnostics;

namespace RwSplit.Connections;

/// <summary>
/// The session state a logical connection carries across its physical connections: the replayable session commands
/// (<c>SET</c>, …) run so far, those pending in a local transaction (cut back by savepoints), the database switched to,
/// and the pin to the primary when state cannot be replayed.
/// </summary>
internal sealed class SessionSettings
{
    private const int MaxReplayedCommands = 64;

    private readonly RwSplitConnection _owner;
    private List<string>? _pendingReplay; // in the order run (savepoints cut it back), deduplicated at commit
    private List<(string Name, int Length)>? _savepoints;

    public SessionSettings(RwSplitConnection owner) => _owner = owner;

    /// <summary>The session commands every newly opened physical connection runs, in order; <see langword="null"/> when none.</summary>
    public List<string>? Replay { get; private set; }

    /// <summary>The database set by <see cref="RwSplitConnection.ChangeDatabase"/>, if any.</summary>
    public string? Database { get; set; }

    /// <summary>Why the session is pinned to the primary, or <see langword="null"/>.</summary>
    public string? PinDetail { get; private set; }

    public void Pin(string detail)
    {
        if (PinDetail is not null)
            return;
        PinDetail = detail;
        Log.SessionPinned(_owner.DataSourceOrThrow.Logger, detail);
    }

    public void Reset()
    {
        Replay = null;
        _pendingReplay = null;
        _savepoints = null;
        Database = null;
        PinDetail = null;
    }

    /// <summary>
    /// After a replayable session command succeeded on <paramref name="ranOn"/>: run it on the other open physical
    /// connection and remember it for physical connections opened later.
    /// </summary>
    public async ValueTask OnSessionCommandAsync(DbConnection ranOn, string text, bool async, CancellationToken cancellationToken)
    {

        // Ran on a distributed transaction's branch: the connection's own primary and replica need it too.
        var onBranch = _owner.Enlistment.ActiveBranch is { } branch && ReferenceEquals(ranOn, branch.Connection);
        if (!onBranch && _owner.Enlistment.Local is not null && _owner.Dialect.RevertsSessionCommandsOnRollback)
        {
            // PostgreSQL undoes a SET of a transaction that rolls back: it becomes the session's only if the
            // transaction commits (OnTransactionCommittedAsync); until then it is on the primary alone.
            var pending = _pendingReplay ??= new List<string>();
            if (pending.Count >= 4 * MaxReplayedCommands)
                Pin($"more than {4 * MaxReplayedCommands} session commands in one transaction");
            else
                pending.Add(text);
            return;
        }

        if (_owner.Physical.Primary is { } primary && !ReferenceEquals(ranOn, primary))
            await PhysicalConnections.RunSessionCommandAsync(primary, text, async, cancellationToken).ConfigureAwait(false);
        if (_owner.Physical.Replica is { } replica && !ReferenceEquals(ranOn, replica))
            await PhysicalConnections.RunSessionCommandAsync(replica, text, async, cancellationToken).ConfigureAwait(false);
        Remember(text);
        if (onBranch && Replay is not null)
            _owner.Enlistment.ActiveBranch!.MarkSessionApplied(Replay);
    }

    /// <summary>
    /// The local transaction committed: the session commands it ran (on the primary) become the session's, so the
    /// replica's connection gets them now and later physical connections by replay. A replica that cannot take them is
    /// let go (the next read opens one with the whole list).
    /// </summary>
    public async ValueTask OnTransactionCommittedAsync(bool async)
    {
        var ran = _pendingReplay;
        _pendingReplay = null;
        _savepoints = null;
        if (ran is null)
            return;
        var pending = new List<string>(ran.Count);
        foreach (var text in ran)
            AddLastWins(pending, text);
        foreach (var text in pending)
        {
            await _owner.Physical.RunOnReplicaOrDropAsync(text, async).ConfigureAwait(false);
            Remember(text);
        }
    }

    /// <summary>The local transaction rolled back: the server reverted the session commands it ran.</summary>
    public void OnTransactionRolledBack()
    {
        _pendingReplay = null;
        _savepoints = null;
    }

    /// <summary>A savepoint of the local transaction: the session commands run after it are undone by a rollback to it.</summary>
    public void OnSavepoint(string name) => (_savepoints ??= new()).Add((name, _pendingReplay?.Count ?? 0));

    /// <summary>
    /// The local transaction rolled back to a savepoint: the server undid the session commands run since (PostgreSQL),
    /// so they are not replayed; the savepoint stays, later ones go.
    /// </summary>
    public void OnRollbackToSavepoint(string name)
    {
        var index = LastSavepoint(name);
        if (index < 0)
            return;
        var length = _savepoints![index].Length;
        if (_pendingReplay is { } pending && pending.Count > length)
            pending.RemoveRange(length, pending.Count - length);
        _savepoints.RemoveRange(index + 1, _savepoints.Count - index - 1);
    }

    /// <summary>A savepoint was released: it and the later ones are gone; the session commands run since stay pending.</summary>
    public void OnReleaseSavepoint(string name)
    {
        var index = LastSavepoint(name);
        if (index >= 0)
            _savepoints!.RemoveRange(index, _savepoints.Count - index);
    }

    // PostgreSQL folds unquoted names to lower case and a newer savepoint of the same name hides the older one.
    private int LastSavepoint(string name)
        => _savepoints?.FindLastIndex(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)) ?? -1;

    /// <summary>Adds a session command to the replay list; pins the session when the list is full.</summary>
    private void Remember(string text)
    {
        Replay ??= new List<string>();
        if (!Replay.Contains(text) && Replay.Count >= MaxReplayedCommands)
        {
            Pin($"more than {MaxReplayedCommands} distinct session commands to replay");
            return;
        }

        AddLastWins(Replay, text);
    }

    /// <summary>
    /// Appends <paramref name="text"/>, removing an earlier identical command first: replaying the list in order then
    /// ends where the session ended (<c>SET x = 1; SET x = 2; SET x = 1</c> replays as <c>x = 2, x = 1</c>).
    /// </summary>
    private static void AddLastWins(List<string> list, string text)
    {
        list.Remove(text);
        list.Add(text);
    }
}
