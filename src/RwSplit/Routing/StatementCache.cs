using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Data;
using RwSplit.Providers;

namespace RwSplit.Routing;

/// <summary>
/// Classifications per distinct command text, bounded: when full, it is cleared and refills with the texts in use
/// (cheaper and simpler than LRU bookkeeping on the hot path; applications have a small working set of texts).
/// </summary>
internal sealed class StatementCache
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    // Texts looked up by reference: string literals and cached SQL are the same instance on every call, and a reference
    // hash does not read the text (an ordinal lookup hashes all of it: 460 ns for a 1.5 KB text). Only the instance an
    // entry was created with is promoted here, on its second lookup, so texts built anew for each call never enter it.
    private readonly ConcurrentDictionary<string, StatementClassification> _byReference = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentDictionary<string, byte> _learnedWrites = new(StringComparer.Ordinal);
    private readonly StatementClassifier _classifier;
    private readonly int _capacity;

    // ConcurrentDictionary.IsEmpty takes every lock when the map is empty, which it nearly always is: a flag instead.
    private volatile bool _anyLearnedWrite;

    public StatementCache(StatementClassifier classifier, int capacity)
    {
        _classifier = classifier;
        _capacity = capacity;
    }

    /// <summary>The data source's classifier (its function catalog query and volatile-but-read-only functions).</summary>
    public StatementClassifier Classifier => _classifier;

    public int Count => _entries.Count;

    /// <summary>Changes whenever a learned write is added: cached facts computed before it are stale.</summary>
    public int Version { get; private set; }

    public StatementClassification Classify(string commandText)
    {
        if (_byReference.TryGetValue(commandText, out var known))
            return known;
        if (_entries.TryGetValue(commandText, out var cached))
        {
            if (ReferenceEquals(cached.Text, commandText))
                Promote(commandText, cached.Classification);
            return cached.Classification;
        }

        StatementClassification classification;
        try
        {
            classification = _classifier.Classify(commandText);
        }
#pragma warning disable CA1031 // A classifier bug must fail closed (primary), never fail the command.
        catch (Exception)
#pragma warning restore CA1031
        {
            classification = StatementClassification.Unreadable;
        }

        if (_entries.Count >= _capacity)
        {
            _entries.Clear();
            _byReference.Clear();
        }

        _entries.TryAdd(commandText, new Entry(commandText, classification));
        return classification;
    }

    private void Promote(string commandText, StatementClassification classification)
    {
        // Bounded like the main map (normally it holds a subset of it, cleared with it; concurrent clears may leave strays).
        if (_byReference.Count >= _capacity)
            _byReference.Clear();
        _byReference.TryAdd(commandText, classification);
    }

    /// <summary>
    /// The routing facts of a command text when they can be had without I/O: <see langword="false"/> for a read that
    /// calls functions, whose volatility may have to be loaded from the database first (the data source's
    /// <c>ResolveFactsAsync</c> does that; for every other text both give the same facts).
    /// </summary>
    public bool TryResolveFacts(string commandText, CommandType commandType, out StatementFacts facts)
    {
        // Learned writes first: a stored procedure declared read-only that a replica rejected is remembered too.
        if (IsLearnedWrite(commandText))
        {
            facts = new StatementFacts(StatementKind.Write, RoutingReason.LearnedWrite);
            return true;
        }

        if (commandType == CommandType.StoredProcedure)
        {
            facts = StatementFacts.From(_classifier.ClassifyProcedure(commandText), RoutingReason.ReadOnlyProcedure, RoutingReason.StoredProcedure);
            return true;
        }

        if (commandType == CommandType.TableDirect)
        {
            facts = StatementFacts.Read;
            return true;
        }

        var classification = Classify(commandText);
        if (classification.Kind == StatementKind.Read && classification.Functions.Count > 0)
        {
            facts = default;
            return false;
        }

        facts = StatementFacts.From(classification, RoutingReason.Read, RoutingReason.Write);
        return true;
    }

    public bool IsLearnedWrite(string commandText) => _anyLearnedWrite && _learnedWrites.ContainsKey(commandText);

    /// <summary>Whether any text was learned as a write (so that a caller can skip building a key to look up).</summary>
    public bool HasLearnedWrites => _anyLearnedWrite;

    public void LearnWrite(string commandText)
    {
        if (_learnedWrites.Count >= _capacity)
            _learnedWrites.Clear();
        if (_learnedWrites.TryAdd(commandText, 0))
        {
            _anyLearnedWrite = true;
            Version++;
        }
    }

    /// <summary>A classification and the text instance it was first stored with (see <see cref="_byReference"/>).</summary>
    private readonly record struct Entry(string Text, StatementClassification Classification);
}
