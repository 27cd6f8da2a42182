using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore.Storage;

namespace RwSplit.EntityFrameworkCore.Storage;

/// <summary>
/// The provider's database creator, run on the primary through the provider's own connection: <c>EnsureCreated</c>,
/// <c>Create</c> and <c>EnsureDeleted</c> find the connection type the provider casts to and the errors it recognises
/// ("database does not exist"), and <c>CanConnect</c> answers for the primary, not for a replica.
/// </summary>
internal sealed class RwSplitDatabaseCreator(IRelationalDatabaseCreator inner, RwSplitContextSession session) : IRelationalDatabaseCreator
{
    public bool EnsureDeleted() => session.OnPrimary(inner.EnsureDeleted, writes: true, dropsDatabase: true);

    public Task<bool> EnsureDeletedAsync(CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(() => inner.EnsureDeletedAsync(cancellationToken), writes: true, dropsDatabase: true);

    public bool EnsureCreated() => session.OnPrimary(inner.EnsureCreated, writes: true);

    public Task<bool> EnsureCreatedAsync(CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(() => inner.EnsureCreatedAsync(cancellationToken), writes: true);

    public bool CanConnect() => session.OnPrimary(inner.CanConnect, writes: false);

    public Task<bool> CanConnectAsync(CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(() => inner.CanConnectAsync(cancellationToken), writes: false);

    public bool Exists() => session.OnPrimary(inner.Exists, writes: false);

    public Task<bool> ExistsAsync(CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(() => inner.ExistsAsync(cancellationToken), writes: false);

    public bool HasTables() => session.OnPrimary(inner.HasTables, writes: false);

    public Task<bool> HasTablesAsync(CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(() => inner.HasTablesAsync(cancellationToken), writes: false);

    public void Create() => session.OnPrimary(() => { inner.Create(); return true; }, writes: true);

    public Task CreateAsync(CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(async () => { await inner.CreateAsync(cancellationToken).ConfigureAwait(false); return true; }, writes: true);

    public void Delete() => session.OnPrimary(() => { inner.Delete(); return true; }, writes: true, dropsDatabase: true);

    public Task DeleteAsync(CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(async () => { await inner.DeleteAsync(cancellationToken).ConfigureAwait(false); return true; }, writes: true, dropsDatabase: true);

    public void CreateTables() => session.OnPrimary(() => { inner.CreateTables(); return true; }, writes: true);

    public Task CreateTablesAsync(CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(async () => { await inner.CreateTablesAsync(cancellationToken).ConfigureAwait(false); return true; }, writes: true);

    public string GenerateCreateScript() => inner.GenerateCreateScript();
}
