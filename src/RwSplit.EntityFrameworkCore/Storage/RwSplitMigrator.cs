using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore.Migrations;

namespace RwSplit.EntityFrameworkCore.Storage;

/// <summary>
/// The provider's migrator, with <c>Migrate</c> run on the primary through the provider's own connection: the history
/// table is read where it is written (a replica behind would have the migrator apply a migration twice), the
/// migration lock and each migration's transaction stay on one server, and the context then reads the new schema.
/// </summary>
internal sealed class RwSplitMigrator(IMigrator inner, RwSplitContextSession session) : IMigrator
{
    [RequiresUnreferencedCode("Migration generation currently isn't compatible with trimming")]
    [RequiresDynamicCode("Migrations operations are not supported with NativeAOT")]
    public void Migrate(string? targetMigration = null)
        => session.OnPrimary(() => { inner.Migrate(targetMigration); return true; }, writes: true);

    [RequiresUnreferencedCode("Migration generation currently isn't compatible with trimming")]
    [RequiresDynamicCode("Migrations operations are not supported with NativeAOT")]
    public Task MigrateAsync(string? targetMigration = null, CancellationToken cancellationToken = default)
        => session.OnPrimaryAsync(async () => { await inner.MigrateAsync(targetMigration, cancellationToken).ConfigureAwait(false); return true; }, writes: true);

    [RequiresUnreferencedCode("Migration generation currently isn't compatible with trimming")]
    [RequiresDynamicCode("Migrations operations are not supported with NativeAOT")]
    public string GenerateScript(string? fromMigration = null, string? toMigration = null, MigrationsSqlGenerationOptions options = MigrationsSqlGenerationOptions.Default)
        => inner.GenerateScript(fromMigration, toMigration, options);

    [RequiresDynamicCode("Migrations operations are not supported with NativeAOT Use a migration bundle or an alternate way of executing migration operations.")]
    public bool HasPendingModelChanges() => inner.HasPendingModelChanges();
}
