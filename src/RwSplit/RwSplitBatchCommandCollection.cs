using System;
using System.Collections.Generic;
using System.Data.Common;

namespace RwSplit;

/// <summary>The statements of an <see cref="RwSplitBatch"/>, in execution order.</summary>
public sealed class RwSplitBatchCommandCollection : DbBatchCommandCollection
{
    private readonly List<RwSplitBatchCommand> _commands = [];
    private readonly RwSplitDialect _dialect;

    internal RwSplitBatchCommandCollection(RwSplitDialect dialect) => _dialect = dialect;

    internal List<RwSplitBatchCommand> Items => _commands;

    /// <inheritdoc />
    public override int Count => _commands.Count;

    /// <inheritdoc />
    public override bool IsReadOnly => false;

    /// <summary>The statement at <paramref name="index"/>.</summary>
    /// <param name="index">The position.</param>
    public new RwSplitBatchCommand this[int index]
    {
        get => _commands[index];
        set => _commands[index] = Check(value);
    }

    /// <summary>Adds a statement.</summary>
    /// <param name="item">A statement created by <see cref="RwSplitBatch.CreateBatchCommand"/> or <see cref="RwSplitProviderFactory.CreateBatchCommand"/>.</param>
    public void Add(RwSplitBatchCommand item) => _commands.Add(Check(item));

    /// <inheritdoc />
    public override void Add(DbBatchCommand item) => _commands.Add(Check(item));

    /// <inheritdoc />
    public override void Clear() => _commands.Clear();

    /// <inheritdoc />
    public override bool Contains(DbBatchCommand item) => item is RwSplitBatchCommand command && _commands.Contains(command);

    /// <inheritdoc />
    public override void CopyTo(DbBatchCommand[] array, int arrayIndex)
    {
        ArgumentNullException.ThrowIfNull(array);
        for (var i = 0; i < _commands.Count; i++)
            array[arrayIndex + i] = _commands[i];
    }

    /// <inheritdoc />
    public override IEnumerator<DbBatchCommand> GetEnumerator() => _commands.GetEnumerator();

    /// <inheritdoc />
    public override int IndexOf(DbBatchCommand item) => item is RwSplitBatchCommand command ? _commands.IndexOf(command) : -1;

    /// <inheritdoc />
    public override void Insert(int index, DbBatchCommand item) => _commands.Insert(index, Check(item));

    /// <inheritdoc />
    public override bool Remove(DbBatchCommand item) => item is RwSplitBatchCommand command && _commands.Remove(command);

    /// <inheritdoc />
    public override void RemoveAt(int index) => _commands.RemoveAt(index);

    /// <inheritdoc />
    protected override DbBatchCommand GetBatchCommand(int index) => _commands[index];

    /// <inheritdoc />
    protected override void SetBatchCommand(int index, DbBatchCommand batchCommand) => _commands[index] = Check(batchCommand);

    private RwSplitBatchCommand Check(DbBatchCommand? item) => item switch
    {
        null => throw new ArgumentNullException(nameof(item)),
        RwSplitBatchCommand command when command.Dialect.IsSameProvider(_dialect) => command,
        RwSplitBatchCommand command => throw new ArgumentException($"This batch command was created for the {command.Dialect.SystemName} provider; the batch uses {_dialect.SystemName}.", nameof(item)),
        _ => throw new ArgumentException($"An RwSplitBatch takes RwSplitBatchCommands (from RwSplitBatch.CreateBatchCommand), not a {item.GetType().Name}.", nameof(item)),
    };
}
