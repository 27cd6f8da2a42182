using System;
using System.Text.RegularExpressions;
using System.Threading;

namespace RwSplit.Tds;

/// <summary>Which requests a rule answers.</summary>
public sealed class TdsMatch
{
    private readonly Func<TdsRequest, bool> _predicate;

    private TdsMatch(string description, Func<TdsRequest, bool> predicate)
    {
        Description = description;
        _predicate = predicate;
    }

    public string Description { get; }

    /// <summary>The SQL text (batch, or the statement of sp_executesql/sp_prepexec) is exactly <paramref name="text"/>.</summary>
    public static TdsMatch Exact(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new($"text = \"{text}\"", r => string.Equals(r.Text, text, StringComparison.Ordinal) && IsStatement(r));
    }

    /// <summary>The SQL text starts with <paramref name="prefix"/> (case-insensitive, leading white space ignored).</summary>
    public static TdsMatch Prefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return new($"text starts with \"{prefix}\"", r => IsStatement(r) && r.Text!.TrimStart().StartsWith(prefix, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The SQL text matches <paramref name="pattern"/> (case-insensitive, single-line).</summary>
    public static TdsMatch Regex(string pattern)
    {
        var regex = new Regex(pattern, RegexOptions.IgnoreCase | RegexOptions.Singleline | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        return new($"text matches /{pattern}/", r => IsStatement(r) && regex.IsMatch(r.Text!));
    }

    /// <summary>
    /// An RPC call of the stored procedure <paramref name="name"/> (<c>CommandType.StoredProcedure</c>): compared
    /// case-insensitively without brackets; a name without schema matches any schema.
    /// </summary>
    public static TdsMatch Procedure(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var wanted = Normalize(name);
        return new($"procedure {name}", r =>
        {
            if (r.Kind != TdsRequestKind.Rpc || r.Procedure is null || r.Text is not null)
                return false;
            var actual = Normalize(r.Procedure);
            if (string.Equals(actual, wanted, StringComparison.OrdinalIgnoreCase))
                return true;
            return !wanted.Contains('.', StringComparison.Ordinal) && actual.EndsWith("." + wanted, StringComparison.OrdinalIgnoreCase);
        });
    }

    /// <summary>Any request for which <paramref name="predicate"/> holds (transaction requests too).</summary>
    public static TdsMatch Where(Func<TdsRequest, bool> predicate, string description = "predicate")
    {
        ArgumentNullException.ThrowIfNull(predicate);
        return new(description, predicate);
    }

    public bool Matches(TdsRequest request) => _predicate(request);

    private static bool IsStatement(TdsRequest r) => r.Text is not null && r.Kind is TdsRequestKind.SqlBatch or TdsRequestKind.Rpc;

    private static string Normalize(string name) => name.Replace("[", "", StringComparison.Ordinal).Replace("]", "", StringComparison.Ordinal).Trim();

    /// <inheritdoc />
    public override string ToString() => Description;
}

/// <summary>A scripted rule: a match and the reply it gives, optionally for a limited number of requests.</summary>
public sealed class TdsRule
{
    private readonly Func<TdsRequest, TdsReply> _reply;
    private int _remaining = -1;
    private int _hits;

    internal TdsRule(TdsMatch match, Func<TdsRequest, TdsReply> reply)
    {
        Match = match;
        _reply = reply;
    }

    public TdsMatch Match { get; }

    /// <summary>How many requests this rule answered.</summary>
    public int Hits => Volatile.Read(ref _hits);

    /// <summary>Answers only the next <paramref name="count"/> matching requests, then stops matching.</summary>
    public TdsRule Times(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Volatile.Write(ref _remaining, count);
        return this;
    }

    internal bool TryTake(TdsRequest request)
    {
        if (!Match.Matches(request))
            return false;
        while (true)
        {
            var remaining = Volatile.Read(ref _remaining);
            if (remaining == 0)
                return false;
            if (remaining < 0 || Interlocked.CompareExchange(ref _remaining, remaining - 1, remaining) == remaining)
                break;
        }

        Interlocked.Increment(ref _hits);
        return true;
    }

    internal TdsReply Reply(TdsRequest request) => _reply(request);

    /// <inheritdoc />
    public override string ToString() => Match.Description;
}

/// <summary>The second half of <c>server.On(match).Reply(...)</c>.</summary>
public sealed class TdsRuleBuilder
{
    private readonly TdsServer _server;
    private readonly TdsMatch _match;

    internal TdsRuleBuilder(TdsServer server, TdsMatch match)
    {
        _server = server;
        _match = match;
    }

    public TdsRule Reply(TdsReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        return _server.AddRule(new TdsRule(_match, _ => reply));
    }

    /// <summary>A reply computed from the request (its parameters, its transaction).</summary>
    public TdsRule Reply(Func<TdsRequest, TdsReply> reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        return _server.AddRule(new TdsRule(_match, reply));
    }
}
