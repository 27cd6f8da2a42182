using System;
using System.Collections.Concurrent;
using System.Collections.Generic;

namespace RwSplit.Routing;

/// <summary>
/// Classifications per distinct command text, bounded: when full, it is cleared and refills with the texts in use
/// (cheaper and simpler than LRU bookkeeping on the hot path; applications have a small working set of texts).
/// </summary>
internal sealed class StatementCache
{
    private readonly ConcurrentDictionary<string, StatementClassification> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _learnedWrites = new(StringComparer.Ordinal);
    private readonly RwSplitDialect _dialect;
    private readonly IReadOnlySet<string> _readOnlyProcedures;
    private readonly int _capacity;

    public StatementCache(RwSplitDialect dialect, IReadOnlySet<string> readOnlyProcedures, int capacity)
    {
        _dialect = dialect;
        _readOnlyProcedures = readOnlyProcedures;
        _capacity = capacity;
    }

    public int Count => _entries.Count;

    /// <summary>Changes whenever a learned write is added: cached facts computed before it are stale.</summary>
    public int Version { get; private set; }

    public StatementClassification Classify(string commandText)
    {
        if (_entries.TryGetValue(commandText, out var cached))
            return cached;

        StatementClassification classification;
        try
        {
            classification = _dialect.Classify(commandText, _readOnlyProcedures);
        }
#pragma warning disable CA1031 // A classifier bug must fail closed (primary), never fail the command.
        catch (Exception)
#pragma warning restore CA1031
        {
            classification = StatementClassification.Unreadable;
        }

        if (_entries.Count >= _capacity)
            _entries.Clear();
        _entries.TryAdd(commandText, classification);
        return classification;
    }

    public bool IsLearnedWrite(string commandText) => !_learnedWrites.IsEmpty && _learnedWrites.ContainsKey(commandText);

    public void LearnWrite(string commandText)
    {
        if (_learnedWrites.Count >= _capacity)
            _learnedWrites.Clear();
        if (_learnedWrites.TryAdd(commandText, 0))
            Version++;
    }
}
