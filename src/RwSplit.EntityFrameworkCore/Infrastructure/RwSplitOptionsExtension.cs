using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Linq;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using RwSplit.EntityFrameworkCore.Storage;

namespace RwSplit.EntityFrameworkCore.Infrastructure;

/// <summary>
/// The options extension <see cref="RwSplitDbContextOptionsBuilderExtensions.UseRwSplit(DbContextOptionsBuilder, RwSplitDataSource)"/>
/// adds: which data source gives the context its connections. Its services wrap the provider's own: the context's
/// connection comes from the data source (<see cref="RwSplitContextSession"/>), database lifecycle and migrations run on
/// the primary as the provider runs them, and a retrying execution strategy also retries RwSplit's transient errors.
/// </summary>
public sealed class RwSplitOptionsExtension : IDbContextOptionsExtension
{
    private DbContextOptionsExtensionInfo? _info;

    /// <summary>Creates the extension for <paramref name="dataSource"/>.</summary>
    /// <param name="dataSource">The data source the context's connections come from.</param>
    public RwSplitOptionsExtension(RwSplitDataSource dataSource) => DataSource = dataSource ?? throw new ArgumentNullException(nameof(dataSource));

    /// <summary>The data source the context's connections come from.</summary>
    public RwSplitDataSource DataSource { get; }

    /// <inheritdoc />
    public DbContextOptionsExtensionInfo Info => _info ??= new ExtensionInfo(this);

    /// <summary>
    /// Wraps services the provider registered (so <c>UseRwSplit</c> must come after <c>UseNpgsql()</c> or
    /// <c>UseSqlServer()</c>) and adds the context's session. None of them holds the data source: each context reads it
    /// from its options, so contexts over different data sources share EF's internal service provider.
    /// </summary>
    /// <param name="services">EF's internal services.</param>
    public void ApplyServices(IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddScoped<RwSplitContextSession>();
        services.AddScoped<IResettableService>(p => p.GetRequiredService<RwSplitContextSession>());
        services.AddScoped<IInterceptor>(p => p.GetRequiredService<RwSplitContextSession>());
        Decorate<IRelationalDatabaseCreator>(services, static (p, inner) => new RwSplitDatabaseCreator(inner, p.GetRequiredService<RwSplitContextSession>()));
        Decorate<IMigrator>(services, static (p, inner) => new RwSplitMigrator(inner, p.GetRequiredService<RwSplitContextSession>()));
        Decorate<IExecutionStrategyFactory>(services, static (p, inner) => new RwSplitExecutionStrategyFactory(inner, p.GetRequiredService<ICurrentDbContext>()));
    }

    /// <summary>Checks that a relational provider is configured, without a connection of its own.</summary>
    /// <param name="options">The context's options.</param>
    public void Validate(IDbContextOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var relational = options.Extensions.OfType<RelationalOptionsExtension>().FirstOrDefault()
            ?? throw new InvalidOperationException("UseRwSplit needs EF Core's relational provider for the data source's database: call UseNpgsql() or UseSqlServer() first, without a connection string, then UseRwSplit(dataSource).");
        if (relational.ConnectionString is not null || relational.Connection is not null
            || relational.GetType().GetProperty("DataSource")?.GetValue(relational) is DbDataSource)
        {
            throw new InvalidOperationException($"The provider was given a connection, a connection string or a data source of its own, and UseRwSplit gives it {DataSource.Name}'s: call {ProviderMethod(relational)}() without one (its other options, such as MapEnum or EnableRetryOnFailure, stay), then UseRwSplit(dataSource).");
        }

        var providerSystem = relational.GetType().Assembly.GetName().Name switch
        {
            "Npgsql.EntityFrameworkCore.PostgreSQL" => "postgresql",
            "Microsoft.EntityFrameworkCore.SqlServer" => "microsoft.sql_server",
            _ => null,
        };
        if (providerSystem is not null && providerSystem != DataSource.Dialect.SystemName)
            throw new InvalidOperationException($"The context uses {ProviderMethod(relational)}(), but the data source {DataSource.Name} routes to {DataSource.Dialect.SystemName}: give UseRwSplit a data source of the same database system.");
    }

    private static string ProviderMethod(RelationalOptionsExtension relational)
        => relational.GetType().Assembly.GetName().Name switch
        {
            "Npgsql.EntityFrameworkCore.PostgreSQL" => "UseNpgsql",
            "Microsoft.EntityFrameworkCore.SqlServer" => "UseSqlServer",
            _ => "Use<Provider>",
        };

    /// <summary>
    /// Replaces the last registration of <typeparamref name="TService"/> by a wrapper around what it registered. The
    /// provider registers each of these once, as a type or a factory.
    /// </summary>
    private static void Decorate<TService>(IServiceCollection services, Func<IServiceProvider, TService, TService> wrap)
        where TService : class
    {
        var descriptor = services.LastOrDefault(d => d.ServiceType == typeof(TService))
            ?? throw new InvalidOperationException($"No {typeof(TService).Name} is registered: UseRwSplit must come after the provider's UseNpgsql() or UseSqlServer().");
        services.Remove(descriptor);
        Func<IServiceProvider, object> inner = descriptor switch
        {
            { ImplementationFactory: { } factory } => factory,
            { ImplementationInstance: { } instance } => _ => instance,
            { ImplementationType: { } type } => p => ActivatorUtilities.CreateInstance(p, type),
            _ => throw new InvalidOperationException($"The registration of {typeof(TService).Name} cannot be wrapped."),
        };
        services.Add(new ServiceDescriptor(typeof(TService), p => wrap(p, (TService)inner(p)), descriptor.Lifetime));
    }

    private sealed class ExtensionInfo(RwSplitOptionsExtension extension) : DbContextOptionsExtensionInfo(extension)
    {
        private new RwSplitOptionsExtension Extension => (RwSplitOptionsExtension)base.Extension;

        public override bool IsDatabaseProvider => false;

        // The data source's name only: no server, database or user.
        public override string LogFragment => $"RwSplit={Extension.DataSource.Name} ";

        // The services read the data source from each context's options: one internal service provider for all.
        public override int GetServiceProviderHashCode() => 0;

        public override bool ShouldUseSameServiceProvider(DbContextOptionsExtensionInfo other) => other is ExtensionInfo;

        public override void PopulateDebugInfo(IDictionary<string, string> debugInfo)
            => debugInfo["RwSplit:DataSource"] = Extension.DataSource.Name;
    }
}
