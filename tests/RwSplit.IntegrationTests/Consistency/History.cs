using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;

namespace RwSplit.IntegrationTests.Consistency;

/// <summary>What one recorded operation was.</summary>
public enum OperationKind
{
    /// <summary>A session wrote <see cref="Operation.Value"/> to its own key (committed).</summary>
    Write,

    /// <summary>A connection read <see cref="Operation.Value"/> from a key (or <see langword="null"/>: no row).</summary>
    Read,

    /// <summary>A connection exported a consistency token (<see cref="Operation.Token"/>).</summary>
    ExportToken,

    /// <summary>A connection applied a consistency token (<see cref="Operation.Token"/>).</summary>
    ApplyToken,
}

/// <summary>
/// One operation of the history. Every key is written by one session only, with increasing values, so a larger value is
/// a newer state; <see cref="Connection"/> identifies a logical connection (a session's reads are ordered by
/// <see cref="Sequence"/> within it).
/// </summary>
public sealed record Operation(long Sequence, int Connection, OperationKind Kind, int Key, long? Value, int Token, string Where);

/// <summary>The operations of a run, recorded concurrently, in each connection's program order.</summary>
public sealed class History
{
    private readonly List<Operation> _operations = new();
    private long _sequence;

    public void Add(int connection, OperationKind kind, int key, long? value, int token = 0, string where = "")
    {
        var operation = new Operation(Interlocked.Increment(ref _sequence), connection, kind, key, value, token, where);
        lock (_operations)
            _operations.Add(operation);
    }

    public IReadOnlyList<Operation> Operations
    {
        get
        {
            lock (_operations)
                return _operations.OrderBy(o => o.Sequence).ToList();
        }
    }
}

/// <summary>A read that saw older data than a guarantee promised.</summary>
public sealed record Violation(string Guarantee, Operation Read, long Floor, string Why);

/// <summary>
/// Checks a recorded history against RwSplit's read guarantees, from the history alone:
/// <list type="bullet">
/// <item><description>read-your-writes: a connection's read of a key sees at least the last value that connection wrote
/// to it, and at least the values of every token applied to it;</description></item>
/// <item><description>tokens: a read after applying a token sees at least what the exporting connection had written
/// (and been promised) when it exported the token;</description></item>
/// <item><description>monotonic reads: a connection's reads of a key never go back in time.</description></item>
/// </list>
/// </summary>
public static class ConsistencyChecker
{
    public static IReadOnlyList<Violation> Check(IReadOnlyList<Operation> history)
    {
        var violations = new List<Violation>();

        // What each connection is entitled to see, per key: its own writes and the tokens it applied (with which
        // guarantee), and, apart, the newest value it read already (monotonic reads).
        var entitled = new Dictionary<(int Connection, int Key), (long Value, string Guarantee)>();
        var seen = new Dictionary<(int Connection, int Key), long>();
        var tokens = new Dictionary<int, Dictionary<int, long>>(); // token id → key → value it promises
        void Entitle(int connection, int key, long value, string guarantee)
        {
            if (!entitled.TryGetValue((connection, key), out var current) || value > current.Value)
                entitled[(connection, key)] = (value, guarantee);
        }

        foreach (var operation in history.OrderBy(o => o.Sequence))
        {
            switch (operation.Kind)
            {
                case OperationKind.Write:
                    Entitle(operation.Connection, operation.Key, operation.Value!.Value, "read-your-writes");
                    break;
                case OperationKind.ExportToken:
                    // A token covers the exporting connection's writes and the tokens applied to it.
                    tokens[operation.Token] = entitled.Where(p => p.Key.Connection == operation.Connection).ToDictionary(p => p.Key.Key, p => p.Value.Value);
                    break;
                case OperationKind.ApplyToken:
                    if (tokens.TryGetValue(operation.Token, out var covered))
                    {
                        foreach (var (key, value) in covered)
                            Entitle(operation.Connection, key, value, "consistency token");
                    }

                    break;
                case OperationKind.Read:
                    var observed = operation.Value ?? long.MinValue;
                    var what = $"connection {operation.Connection} read {operation.Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no row"} of key {operation.Key} on {operation.Where}";
                    if (entitled.TryGetValue((operation.Connection, operation.Key), out var floor) && observed < floor.Value)
                        violations.Add(new Violation(floor.Guarantee, operation, floor.Value, $"{what}, older than {floor.Value}"));
                    else if (seen.TryGetValue((operation.Connection, operation.Key), out var before) && observed < before)
                        violations.Add(new Violation("monotonic reads", operation, before, $"{what}, older than {before} it read before"));
                    if (observed > seen.GetValueOrDefault((operation.Connection, operation.Key), long.MinValue))
                        seen[(operation.Connection, operation.Key)] = observed;
                    break;
            }
        }

        return violations;
    }
}
