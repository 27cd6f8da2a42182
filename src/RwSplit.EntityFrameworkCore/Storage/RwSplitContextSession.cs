using System;
using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using RwSplit.EntityFrameworkCore.Infrastructure;

namespace RwSplit.EntityFrameworkCore.Storage;

/// <summary>
/// One context's RwSplit session (a scoped EF service, so one per context instance, kept by a pooled context):
/// <list type="bullet">
/// <item>gives EF the context's connection, an <see cref="RwSplitConnection"/> of the data source, when EF first needs
/// one; a connection EF makes for another database (the provider's admin connection for <c>CREATE DATABASE</c> and
/// <c>DROP DATABASE</c>) becomes the provider's own connection to that database on the primary;</item>
/// <item>runs database lifecycle and migrations on the primary through the provider's own connection
/// (<see cref="OnPrimary{T}"/>), so the provider finds the connection type it casts to and the errors it recognises,
/// and afterwards the context reads what they did (read-your-writes);</item>
/// <item>applies the bounded staleness a query asked for with <see cref="RwSplitQueryableExtensions.WithMaxStaleness{T}"/>;</item>
/// <item>resets the session when a pooled context returns to the pool.</item>
/// </list>
/// </summary>
internal sealed class RwSplitContextSession : IDbConnectionInterceptor, IDbCommandInterceptor, IResettableService
{
    /// <summary>The tag <see cref="RwSplitQueryableExtensions.WithMaxStaleness{T}"/> writes (EF puts tags first, as <c>-- </c> lines).</summary>
    internal const string MaxStalenessTag = "rwsplit:max-staleness=";

    private readonly ICurrentDbContext _currentContext;
    private RwSplitConnection? _connection;
    private bool _onPrimary;
    private bool _wroteOnPrimary;
    private ReadConsistency? _consistency;

    public RwSplitContextSession(IDbContextOptions options, ICurrentDbContext currentContext)
    {
        DataSource = options.FindExtension<RwSplitOptionsExtension>()!.DataSource;
        _currentContext = currentContext;
    }

    public RwSplitDataSource DataSource { get; }

    private IRelationalConnection Relational => _currentContext.Context.GetService<IRelationalConnection>();

    public InterceptionResult<DbConnection> ConnectionCreating(ConnectionCreatingEventData eventData, InterceptionResult<DbConnection> result)
    {
        if (result.HasResult)
            return result;
        if (eventData.ConnectionId != Relational.ConnectionId)
            return InterceptionResult<DbConnection>.SuppressWithResult(OtherDatabaseConnection(eventData.ConnectionString));
        if (_onPrimary)
            return InterceptionResult<DbConnection>.SuppressWithResult(DataSource.CreatePrimaryConnection());

        var connection = DataSource.CreateConnection();
        if (_consistency is { } consistency)
            connection.Consistency = consistency;
        if (_wroteOnPrimary)
            connection.MarkWritten(); // what a lifecycle command or a migration did on the primary is read back
        _wroteOnPrimary = false;
        _consistency = null;
        _connection = connection;
        return InterceptionResult<DbConnection>.SuppressWithResult(connection);
    }

    /// <summary>
    /// The provider made a connection of its own for another database (its admin connection, from the redacted string
    /// RwSplit reports): the provider's connection to that database on the primary, with the primary's credentials.
    /// </summary>
    private DbConnection OtherDatabaseConnection(string? connectionString)
    {
        var builder = DataSource.Dialect.ProviderFactory.CreateConnectionStringBuilder()
            ?? throw new InvalidOperationException("The provider has no connection string builder.");
        builder.ConnectionString = connectionString ?? string.Empty;
        var database = builder.TryGetValue("Database", out var value) ? Convert.ToString(value, CultureInfo.InvariantCulture) : null;
        return string.IsNullOrEmpty(database) ? DataSource.CreatePrimaryConnection() : DataSource.CreatePrimaryConnection(database);
    }

    public DbCommand CommandInitialized(CommandEndEventData eventData, DbCommand result)
    {
        if (result is RwSplitCommand command && command.CommandText is { } text && text.StartsWith("-- ", StringComparison.Ordinal)
            && MaxStalenessOf(text) is { } bound)
        {
            command.MaxStaleness = bound;
        }

        return result;
    }

    /// <summary>The bound of a <see cref="MaxStalenessTag"/> line among the leading tag lines (<c>-- …</c>), if any.</summary>
    internal static TimeSpan? MaxStalenessOf(string text)
    {
        var rest = text.AsSpan();
        while (rest.StartsWith("-- ", StringComparison.Ordinal))
        {
            var end = rest.IndexOfAny('\r', '\n');
            var line = (end < 0 ? rest : rest[..end])[3..];
            if (line.StartsWith(MaxStalenessTag, StringComparison.Ordinal))
                return TimeSpan.TryParseExact(line[MaxStalenessTag.Length..], "c", CultureInfo.InvariantCulture, out var bound) ? bound : null;
            if (end < 0)
                break;
            rest = rest[(end + 1)..].TrimStart('\r').TrimStart('\n');
        }

        return null;
    }

    /// <summary>
    /// Runs a lifecycle or migration operation of the provider with the provider's own connection to the primary as
    /// the context's connection, then gives the context an RwSplit connection again (which reads what the operation
    /// wrote when <paramref name="writes"/>). Nested calls (<c>EnsureCreated</c> calling <c>Exists</c>) run as they are.
    /// </summary>
    public T OnPrimary<T>(Func<T> operation, bool writes, bool dropsDatabase = false)
    {
        if (_onPrimary)
            return operation();
        var primary = SwapToPrimary(dropsDatabase);
        try
        {
            return operation();
        }
        finally
        {
            SwapBack(primary, writes, dropsDatabase);
            primary.Dispose();
        }
    }

    /// <inheritdoc cref="OnPrimary{T}"/>
    public async Task<T> OnPrimaryAsync<T>(Func<Task<T>> operation, bool writes, bool dropsDatabase = false)
    {
        if (_onPrimary)
            return await operation().ConfigureAwait(false);
        var primary = SwapToPrimary(dropsDatabase);
        try
        {
            return await operation().ConfigureAwait(false);
        }
        finally
        {
            SwapBack(primary, writes, dropsDatabase);
            await primary.DisposeAsync().ConfigureAwait(false);
        }
    }

    private DbConnection SwapToPrimary(bool dropsDatabase)
    {
        var relational = Relational;
        var current = relational.DbConnection;
        if (current.State != ConnectionState.Closed)
        {
            throw new InvalidOperationException("Database lifecycle commands and migrations run on the primary through the provider's own connection, which replaces the context's connection while they run: the context's connection is open (Database.OpenConnection() or a transaction). Close it first.");
        }

        if (current is RwSplitConnection rwsplit)
            _consistency = rwsplit.Consistency;
        if (dropsDatabase)
            DataSource.ClearPools(); // idle pooled connections to the database would hold it

        var primary = DataSource.CreatePrimaryConnection();
        relational.SetDbConnection(primary, contextOwnsConnection: false); // disposes the closed RwSplit connection EF owned
        _connection = null;
        _onPrimary = true;
        return primary;
    }

    private void SwapBack(DbConnection primary, bool writes, bool dropsDatabase)
    {
        _onPrimary = false;
        _wroteOnPrimary |= writes;
        var relational = Relational;
        if (ReferenceEquals(relational.DbConnection, primary))
            relational.SetDbConnection(null, contextOwnsConnection: true); // the next use creates an RwSplit connection again
        if (dropsDatabase)
            DataSource.ClearPools(); // connections to the dropped database are dead
    }

    public void ResetState()
    {
        if (_connection is { } connection)
        {
            if (connection.State != ConnectionState.Closed)
                connection.Close();
            connection.ResetSession();
        }

        _wroteOnPrimary = false;
        _consistency = null;
    }

    public Task ResetStateAsync(CancellationToken cancellationToken = default)
    {
        ResetState();
        return Task.CompletedTask;
    }
}
