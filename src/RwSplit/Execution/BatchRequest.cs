using System;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Routing;

namespace RwSplit.Execution;

/// <summary>
/// An <see cref="RwSplitBatch"/>'s side of the pipeline: its provider batch and the combined facts of its statements
/// (<see cref="StatementFacts.Combine"/>: the batch runs where its most demanding statement must).
/// </summary>
internal sealed class BatchRequest : ExecutionRequest
{
    private const int StackFacts = 16;
    private readonly List<RwSplitBatchCommand> _commands;
    private int _deciding;

    public BatchRequest(RwSplitDialect dialect, List<RwSplitBatchCommand> commands)
        : base(dialect)
    {
        Inner = dialect.ProviderFactory.CreateBatch();
        _commands = commands;
    }

    /// <summary>The provider's own batch.</summary>
    public DbBatch Inner { get; }

    public override string Noun => "batch";

    public override string ShellName => nameof(RwSplitBatch);

    public override string Text => _commands.Count == 0 ? string.Empty : _commands[Math.Min(_deciding, _commands.Count - 1)].CommandText;

    public override bool HasParameters => _commands.Exists(c => c.Parameters.Count > 0);

    public override void ThrowIfEmpty()
    {
        if (_commands.Count == 0)
            throw new InvalidOperationException("The batch has no statements: add commands from CreateBatchCommand() to BatchCommands before executing.");
        for (var i = 0; i < _commands.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(_commands[i].CommandText))
                throw new InvalidOperationException($"The command text of batch statement {i} is empty: set CommandText before executing.");
        }
    }

    public override bool TryGetFactsNow(RwSplitDataSource dataSource, bool sync, out StatementFacts facts)
    {
        facts = default;
        var count = _commands.Count;
        if (count == 0)
            return false;
        var each = count <= StackFacts ? stackalloc StatementFacts[count] : new StatementFacts[count];
        for (var i = 0; i < count; i++)
        {
            var command = _commands[i];
            if (string.IsNullOrWhiteSpace(command.CommandText))
                return false;
            if (!dataSource.Statements.TryResolveFacts(command.CommandText, command.CommandType, out each[i]))
            {
                if (!sync)
                    return false;
                each[i] = dataSource.ResolveFactsAsync(command.CommandText, command.CommandType, false, default).GetAwaiter().GetResult();
            }
        }

        facts = Learned(dataSource, StatementFacts.Combine(each, out _deciding));
        return true;
    }

    public override async ValueTask<StatementFacts> ResolveFactsAsync(RwSplitDataSource dataSource, bool async, CancellationToken cancellationToken)
    {
        var each = new StatementFacts[_commands.Count];
        for (var i = 0; i < each.Length; i++)
            each[i] = await dataSource.ResolveFactsAsync(_commands[i].CommandText, _commands[i].CommandType, async, cancellationToken).ConfigureAwait(false);
        var facts = StatementFacts.Combine(each, out var deciding);
        _deciding = deciding;
        return Learned(dataSource, facts);
    }

    /// <summary>
    /// The statement the replica refused is learned as a write when the provider names it (<see cref="DbException.BatchCommand"/>);
    /// Npgsql does not for a refusal of a hot standby, so then the batch as a whole (its statements' texts, in order) is
    /// learned: that batch goes to the primary from now on, its statements alone and other batches still route as before.
    /// </summary>
    public override void LearnWrite(RwSplitDataSource dataSource, Exception refusal)
    {
        if (refusal is DbException { BatchCommand: { } refused })
        {
            foreach (var command in _commands)
            {
                if (ReferenceEquals(command.InnerBatchCommand, refused))
                {
                    dataSource.Statements.LearnWrite(command.CommandText);
                    return;
                }
            }
        }

        dataSource.Statements.LearnWrite(LearnedKey());
    }

    /// <summary>The key a whole batch is learned under: its one statement's text, or every text joined by a separator no SQL text holds.</summary>
    private string LearnedKey()
    {
        if (_commands.Count == 1)
            return _commands[0].CommandText;
        var texts = new string[_commands.Count];
        for (var i = 0; i < texts.Length; i++)
            texts[i] = _commands[i].CommandText;
        return "rwsplit-batch\u0000" + string.Join("\u0000", texts);
    }

    /// <summary>The combined facts, unless the whole batch was learned as a write.</summary>
    private StatementFacts Learned(RwSplitDataSource dataSource, in StatementFacts combined)
        => _commands.Count > 1 && dataSource.Statements.HasLearnedWrites && dataSource.Statements.IsLearnedWrite(LearnedKey())
            ? new StatementFacts(StatementKind.Write, RoutingReason.LearnedWrite, combined.SessionEffect, combined.Hint)
            : combined;

    public override int Timeout => Inner.Timeout;

    public override void SetProviderTimeout(int seconds) => Inner.Timeout = seconds;

    public override void Attach(DbConnection physical, DbTransaction? transaction, bool retry)
    {
        Inner.Connection = physical;
        Inner.Transaction = transaction;
        Inner.BatchCommands.Clear();
        foreach (var command in _commands)
            Inner.BatchCommands.Add(command.InnerBatchCommand);
    }

    public override int ExecuteNonQuery() => Inner.ExecuteNonQuery();

    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken) => Inner.ExecuteNonQueryAsync(cancellationToken);

    public override object? ExecuteScalar() => Inner.ExecuteScalar();

    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken) => Inner.ExecuteScalarAsync(cancellationToken);

    public override DbDataReader ExecuteReader(CommandBehavior behavior) => Inner.ExecuteReader(behavior);

    public override Task<DbDataReader> ExecuteReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken) => Inner.ExecuteReaderAsync(behavior, cancellationToken);

    public override void Prepare() => Inner.Prepare();

    public override Task PrepareAsync(CancellationToken cancellationToken) => Inner.PrepareAsync(cancellationToken);
}
