using System;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using RwSplit.EntityFrameworkCore.Infrastructure;

namespace RwSplit.EntityFrameworkCore;

/// <summary>Configures a <see cref="DbContext"/> to take its connections from an <see cref="RwSplitDataSource"/>.</summary>
public static class RwSplitDbContextOptionsBuilderExtensions
{
    /// <summary>
    /// The context's connection becomes an <see cref="RwSplitConnection"/> of <paramref name="dataSource"/>: queries read
    /// from replicas (after a <c>SaveChanges</c>, only from replicas that replayed it, under read-your-writes), writes
    /// run on the primary, and <c>EnsureCreated</c>, <c>EnsureDeleted</c>, <c>CanConnect</c> and <c>Migrate</c> run on
    /// the primary through the provider's own connection. Call it after the provider's method, given no connection
    /// string: <c>options.UseNpgsql(o =&gt; o.MapEnum&lt;Mood&gt;("mood")).UseRwSplit(dataSource)</c>. Works with
    /// <c>AddDbContext</c>, <c>AddDbContextPool</c> (each lease starts a fresh session) and <c>AddDbContextFactory</c>.
    /// </summary>
    /// <param name="optionsBuilder">The options builder.</param>
    /// <param name="dataSource">The data source; the application owns it (disposes it at shutdown).</param>
    /// <returns>The options builder.</returns>
    public static DbContextOptionsBuilder UseRwSplit(this DbContextOptionsBuilder optionsBuilder, RwSplitDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(optionsBuilder);
        ArgumentNullException.ThrowIfNull(dataSource);
        ((IDbContextOptionsBuilderInfrastructure)optionsBuilder).AddOrUpdateExtension(new RwSplitOptionsExtension(dataSource));
        return optionsBuilder;
    }

    /// <summary>
    /// <see cref="UseRwSplit(DbContextOptionsBuilder, RwSplitDataSource)"/> with the data source registered in
    /// <paramref name="services"/> (by <c>AddReadWriteSplit</c>): the one registered under <paramref name="serviceKey"/>,
    /// or the unkeyed one. For <c>AddDbContext((services, options) =&gt; options.UseNpgsql().UseRwSplit(services))</c>.
    /// </summary>
    /// <param name="optionsBuilder">The options builder.</param>
    /// <param name="services">The application's services.</param>
    /// <param name="serviceKey">The key of a keyed data source, or <see langword="null"/> for the unkeyed one.</param>
    /// <returns>The options builder.</returns>
    /// <exception cref="InvalidOperationException">No such data source is registered.</exception>
    public static DbContextOptionsBuilder UseRwSplit(this DbContextOptionsBuilder optionsBuilder, IServiceProvider services, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var dataSource = serviceKey is null
            ? services.GetService<RwSplitDataSource>()
            : services.GetKeyedService<RwSplitDataSource>(serviceKey);
        return optionsBuilder.UseRwSplit(dataSource ?? throw new InvalidOperationException(serviceKey is null
            ? "No RwSplitDataSource is registered: call services.AddReadWriteSplit(...) first, or pass the data source to UseRwSplit."
            : $"No RwSplitDataSource is registered under the key '{serviceKey}': register it with services.AddReadWriteSplit(key, ...), or pass the data source to UseRwSplit."));
    }

    /// <summary>
    /// The drop-in path under EF Core: <see cref="UseRwSplit(DbContextOptionsBuilder, RwSplitDataSource)"/> with the
    /// shared data source of a drop-in connection string (the provider's string plus RwSplit's keywords, such as
    /// <c>Replicas=</c>), as <see cref="RwSplitProviderFactory.GetDataSource(string)"/> builds it. The context reports
    /// the primary's string without RwSplit's keywords and without its password, so the provider can parse it (EF
    /// Core's SQL Server provider parses it on every query): <c>options.UseSqlServer().UseRwSplit(RwSplitSqlServer.Factory, connectionString)</c>.
    /// </summary>
    /// <param name="optionsBuilder">The options builder.</param>
    /// <param name="factory">The provider's RwSplit factory (<c>RwSplitSqlServer.Factory</c>, <c>RwSplitNpgsql.Factory</c>).</param>
    /// <param name="connectionString">The drop-in connection string.</param>
    /// <returns>The options builder.</returns>
    /// <exception cref="ArgumentException">The string is invalid; the message names the fix, never a value of the string.</exception>
    public static DbContextOptionsBuilder UseRwSplit(this DbContextOptionsBuilder optionsBuilder, RwSplitProviderFactory factory, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(factory);
        return optionsBuilder.UseRwSplit(factory.GetDataSource(connectionString));
    }

    /// <inheritdoc cref="UseRwSplit(DbContextOptionsBuilder, RwSplitProviderFactory, string)"/>
    /// <typeparam name="TContext">The context type.</typeparam>
    public static DbContextOptionsBuilder<TContext> UseRwSplit<TContext>(this DbContextOptionsBuilder<TContext> optionsBuilder, RwSplitProviderFactory factory, string connectionString)
        where TContext : DbContext
        => (DbContextOptionsBuilder<TContext>)UseRwSplit((DbContextOptionsBuilder)optionsBuilder, factory, connectionString);

    /// <inheritdoc cref="UseRwSplit(DbContextOptionsBuilder, RwSplitDataSource)"/>
    /// <typeparam name="TContext">The context type.</typeparam>
    public static DbContextOptionsBuilder<TContext> UseRwSplit<TContext>(this DbContextOptionsBuilder<TContext> optionsBuilder, RwSplitDataSource dataSource)
        where TContext : DbContext
        => (DbContextOptionsBuilder<TContext>)UseRwSplit((DbContextOptionsBuilder)optionsBuilder, dataSource);

    /// <inheritdoc cref="UseRwSplit(DbContextOptionsBuilder, IServiceProvider, object?)"/>
    /// <typeparam name="TContext">The context type.</typeparam>
    public static DbContextOptionsBuilder<TContext> UseRwSplit<TContext>(this DbContextOptionsBuilder<TContext> optionsBuilder, IServiceProvider services, object? serviceKey = null)
        where TContext : DbContext
        => (DbContextOptionsBuilder<TContext>)UseRwSplit((DbContextOptionsBuilder)optionsBuilder, services, serviceKey);
}
