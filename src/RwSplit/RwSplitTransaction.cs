using System;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit;

/// <summary>
/// A local transaction of an <see cref="RwSplitConnection"/>, running on the primary. While it is open every command of
/// the connection runs on the primary, inside it.
/// </summary>
public sealed class RwSplitTransaction : DbTransaction
{
    private readonly RwSplitConnection _connection;
    private bool _completed;

    internal RwSplitTransaction(RwSplitConnection connection, DbTransaction inner)
    {
        _connection = connection;
        InnerTransaction = inner;
    }

    /// <summary>The provider's own transaction on the primary (for APIs that need the provider type, such as <c>SqlBulkCopy</c>).</summary>
    public DbTransaction InnerTransaction { get; }

    /// <summary>The logical connection (never the provider's), or <see langword="null"/> once the transaction completed.</summary>
    public new RwSplitConnection? Connection => _completed ? null : _connection;

    /// <inheritdoc />
    protected override DbConnection? DbConnection => Connection;

    /// <inheritdoc />
    public override IsolationLevel IsolationLevel => InnerTransaction.IsolationLevel;

    /// <inheritdoc />
    public override bool SupportsSavepoints => InnerTransaction.SupportsSavepoints;

    /// <inheritdoc />
    public override void Commit()
    {
        InnerTransaction.Commit();
        _connection.SettingsIfAny?.OnTransactionCommittedAsync(async: false).GetAwaiter().GetResult();
        Complete();
    }

    /// <inheritdoc />
    public override async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        await InnerTransaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        if (_connection.SettingsIfAny is { } settings)
            await settings.OnTransactionCommittedAsync(async: true).ConfigureAwait(false);
        Complete();
    }

    /// <inheritdoc />
    public override void Rollback()
    {
        InnerTransaction.Rollback();
        Complete();
    }

    /// <inheritdoc />
    public override async Task RollbackAsync(CancellationToken cancellationToken = default)
    {
        await InnerTransaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
        Complete();
    }

    /// <inheritdoc />
    public override void Save(string savepointName)
    {
        InnerTransaction.Save(savepointName);
        _connection.Settings.OnSavepoint(savepointName);
    }

    /// <inheritdoc />
    public override async Task SaveAsync(string savepointName, CancellationToken cancellationToken = default)
    {
        await InnerTransaction.SaveAsync(savepointName, cancellationToken).ConfigureAwait(false);
        _connection.Settings.OnSavepoint(savepointName);
    }

    /// <inheritdoc />
    public override void Rollback(string savepointName)
    {
        InnerTransaction.Rollback(savepointName);
        _connection.Settings.OnRollbackToSavepoint(savepointName);
    }

    /// <inheritdoc />
    public override async Task RollbackAsync(string savepointName, CancellationToken cancellationToken = default)
    {
        await InnerTransaction.RollbackAsync(savepointName, cancellationToken).ConfigureAwait(false);
        _connection.Settings.OnRollbackToSavepoint(savepointName);
    }

    /// <inheritdoc />
    public override void Release(string savepointName)
    {
        InnerTransaction.Release(savepointName);
        _connection.Settings.OnReleaseSavepoint(savepointName);
    }

    /// <inheritdoc />
    public override async Task ReleaseAsync(string savepointName, CancellationToken cancellationToken = default)
    {
        await InnerTransaction.ReleaseAsync(savepointName, cancellationToken).ConfigureAwait(false);
        _connection.Settings.OnReleaseSavepoint(savepointName);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            try
            {
                InnerTransaction.Dispose(); // rolls back if still pending
            }
            finally
            {
                Complete();
            }
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        try
        {
            await InnerTransaction.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            Complete();
        }

        GC.SuppressFinalize(this);
    }

    private void Complete()
    {
        _completed = true;
        _connection.Enlistment.OnLocalEnded(this, _connection.SettingsIfAny);
    }
}
