using System;
using System.Data;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Routing;

namespace RwSplit.Execution;

/// <summary>An <see cref="RwSplitCommand"/>'s side of the pipeline: its provider command and the facts of its text, cached.</summary>
internal sealed class CommandRequest : ExecutionRequest
{
    private DbCommand? _copy;

    // Facts of the last text routed: re-executing the same command skips even the cache lookup.
    private string? _factsText;
    private CommandType _factsType;
    private int _factsVersion;
    private StatementFacts _facts;

    public CommandRequest(RwSplitDialect dialect)
        : base(dialect)
    {
        Inner = dialect.ProviderFactory.CreateCommand()
                ?? throw new InvalidOperationException($"The {dialect.SystemName} provider factory cannot create commands.");
    }

    /// <summary>The provider's own command.</summary>
    public DbCommand Inner { get; }

    public override string Noun => "command";

    public override string ShellName => nameof(RwSplitCommand);

    /// <summary>The provider refuses while the command's reader is open, with its own exception (as raw providers do).</summary>
    protected override void OnConnectionChanging()
    {
        if (Inner.Connection is not null)
            Inner.Connection = null;
    }

    public override string Text => Inner.CommandText;

    public override bool HasParameters => Inner.Parameters.Count > 0;

    public override int Timeout => Inner.CommandTimeout;

    public override void SetProviderTimeout(int seconds) => Current.CommandTimeout = seconds;

    public override void ThrowIfEmpty()
    {
        if (string.IsNullOrWhiteSpace(Inner.CommandText))
            throw new InvalidOperationException("The command text is empty: set CommandText before executing.");
    }

    public override bool TryGetFactsNow(RwSplitDataSource dataSource, bool sync, out StatementFacts facts)
    {
        var text = Inner.CommandText;
        var type = Inner.CommandType;
        var version = dataSource.FactsVersion;
        if (ReferenceEquals(text, _factsText) && type == _factsType && version == _factsVersion)
        {
            facts = _facts;
            return true;
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            facts = default;
            return false;
        }

        if (!dataSource.Statements.TryResolveFacts(text, type, out facts))
        {
            if (!sync)
                return false;
            facts = dataSource.ResolveFactsAsync(text, type, false, default).GetAwaiter().GetResult();
        }

        Remember(text, type, version, facts);
        return true;
    }

    public override async ValueTask<StatementFacts> ResolveFactsAsync(RwSplitDataSource dataSource, bool async, CancellationToken cancellationToken)
    {
        var text = Inner.CommandText;
        var type = Inner.CommandType;
        var version = dataSource.FactsVersion;
        var facts = await dataSource.ResolveFactsAsync(text, type, async, cancellationToken).ConfigureAwait(false);
        Remember(text, type, version, facts);
        return facts;
    }

    private void Remember(string text, CommandType type, int version, in StatementFacts facts)
    {
        _facts = facts;
        _factsText = text;
        _factsType = type;
        _factsVersion = version;
    }

    public override void LearnWrite(RwSplitDataSource dataSource, Exception refusal)
    {
        dataSource.Statements.LearnWrite(Inner.CommandText);
        _factsText = null;
    }

    public override void Attach(DbConnection physical, DbTransaction? transaction, bool retry)
    {
        try
        {
            Inner.Connection = physical;
        }
        catch (InvalidOperationException) when (retry && Inner.Parameters.Cast<DbParameter>().All(p => p is ICloneable))
        {
            // Npgsql still counts the failed attempt's reader as open when closing it failed on the dead connection.
            var copy = Dialect.ProviderFactory.CreateCommand()!;
            copy.CommandText = Inner.CommandText;
            copy.CommandType = Inner.CommandType;
            copy.CommandTimeout = Inner.CommandTimeout;
            foreach (DbParameter parameter in Inner.Parameters)
                copy.Parameters.Add(((ICloneable)parameter).Clone());
            copy.Connection = physical;
            copy.Transaction = transaction;
            _copy = copy;
            return;
        }

        Inner.Transaction = transaction;
    }

    public override void Detach()
    {
        if (_copy is not { } copy)
            return;
        _copy = null;
        for (var i = 0; i < copy.Parameters.Count && i < Inner.Parameters.Count; i++)
        {
            if (Inner.Parameters[i].Direction != ParameterDirection.Input)
                Inner.Parameters[i].Value = copy.Parameters[i].Value;
        }
    }

    private DbCommand Current => _copy ?? Inner;

    public override int ExecuteNonQuery() => Current.ExecuteNonQuery();

    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken) => Current.ExecuteNonQueryAsync(cancellationToken);

    public override object? ExecuteScalar() => Current.ExecuteScalar();

    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken) => Current.ExecuteScalarAsync(cancellationToken);

    public override DbDataReader ExecuteReader(CommandBehavior behavior) => Current.ExecuteReader(behavior);

    public override Task<DbDataReader> ExecuteReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken) => Current.ExecuteReaderAsync(behavior, cancellationToken);

    public override void Prepare() => Inner.Prepare();

    public override Task PrepareAsync(CancellationToken cancellationToken) => Inner.PrepareAsync(cancellationToken);
}
