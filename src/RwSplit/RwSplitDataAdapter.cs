using System;
using System.Data.Common;

namespace RwSplit;

/// <summary>
/// A <see cref="DbDataAdapter"/> over <see cref="RwSplitCommand"/>s, as the drop-in factory hands out
/// (<see cref="RwSplitProviderFactory.CreateDataAdapter"/>): <c>Fill</c> runs its select command through RwSplit's routing
/// (a replica may answer), <c>Update</c> runs its insert, update and delete commands as writes (the primary). With an
/// <see cref="RwSplitCommandBuilder"/> the write commands are generated from the select command's schema.
/// </summary>
public sealed class RwSplitDataAdapter : DbDataAdapter
{
    /// <summary>Creates an adapter without commands.</summary>
    public RwSplitDataAdapter()
    {
    }

    /// <summary>Creates an adapter that fills with <paramref name="selectCommand"/>.</summary>
    /// <param name="selectCommand">The select command.</param>
    public RwSplitDataAdapter(RwSplitCommand selectCommand) => SelectCommand = selectCommand;

    /// <summary>Creates an adapter that fills with <paramref name="selectCommandText"/> on <paramref name="connection"/>.</summary>
    /// <param name="selectCommandText">The select statement.</param>
    /// <param name="connection">The connection.</param>
    public RwSplitDataAdapter(string selectCommandText, RwSplitConnection connection)
        : this(new RwSplitCommand(selectCommandText, connection))
    {
    }

    /// <summary>Raised before each row's command of an <c>Update</c> runs (an <see cref="RwSplitCommandBuilder"/> generates the command here).</summary>
    public event EventHandler<RowUpdatingEventArgs>? RowUpdating;

    /// <summary>Raised after each row's command of an <c>Update</c> ran.</summary>
    public event EventHandler<RowUpdatedEventArgs>? RowUpdated;

    /// <inheritdoc />
    protected override void OnRowUpdating(RowUpdatingEventArgs value) => RowUpdating?.Invoke(this, value);

    /// <inheritdoc />
    protected override void OnRowUpdated(RowUpdatedEventArgs value) => RowUpdated?.Invoke(this, value);
}
