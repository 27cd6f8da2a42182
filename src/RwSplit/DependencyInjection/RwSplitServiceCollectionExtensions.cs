using System;
using System.Data.Common;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RwSplit;
using RwSplit.Transactions;

// In the DI namespace, as the providers do, so that AddReadWriteSplit is found without an extra using.
#pragma warning disable IDE0130
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Registers RwSplit with a service collection.</summary>
public static class RwSplitServiceCollectionExtensions
{
    /// <summary>
    /// Registers an <see cref="RwSplitDataSource"/> (singleton, also as <see cref="DbDataSource"/>) and
    /// <see cref="RwSplitConnection"/> (transient, also as <see cref="DbConnection"/>). Options are validated at start-up
    /// (<c>ValidateOnStart</c>) and on first use; the container's <see cref="ILoggerFactory"/> is used unless one is set.
    /// Calling it again adds configuration to the same registration.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the options: <c>o.UseNpgsql()</c> or <c>o.UseSqlServer()</c>, <c>o.Primary</c>, <c>o.Replicas</c>.</param>
    /// <returns>The service collection.</returns>
    public static IServiceCollection AddReadWriteSplit(this IServiceCollection services, Action<RwSplitOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        AddOptions(services, Options.Options.DefaultName, null, configure);
        services.TryAddSingleton(sp => Create(sp, Options.Options.DefaultName));
        services.TryAddSingleton<DbDataSource>(sp => sp.GetRequiredService<RwSplitDataSource>());
        services.TryAddTransient(sp => sp.GetRequiredService<RwSplitDataSource>().CreateConnection());
        services.TryAddTransient<DbConnection>(sp => sp.GetRequiredService<RwSplitConnection>());
        return services;
    }

    /// <summary>
    /// Registers a keyed <see cref="RwSplitDataSource"/>, <see cref="DbDataSource"/>, <see cref="RwSplitConnection"/> and
    /// <see cref="DbConnection"/>, resolved with <c>[FromKeyedServices(key)]</c> or <c>GetRequiredKeyedService</c>. The
    /// options are named after the key (its string form), which is also the data source's <see cref="RwSplitOptions.Name"/>
    /// unless set.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="serviceKey">The key.</param>
    /// <param name="configure">Configures the options.</param>
    /// <returns>The service collection.</returns>
    public static IServiceCollection AddReadWriteSplit(this IServiceCollection services, object serviceKey, Action<RwSplitOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(serviceKey);
        ArgumentNullException.ThrowIfNull(configure);
        var name = serviceKey.ToString() ?? throw new ArgumentException("The service key must have a string form (it names the options).", nameof(serviceKey));
        AddOptions(services, name, name, configure);
        services.TryAddKeyedSingleton(serviceKey, (sp, _) => Create(sp, name));
        services.TryAddKeyedSingleton<DbDataSource>(serviceKey, (sp, key) => sp.GetRequiredKeyedService<RwSplitDataSource>(key));
        services.TryAddKeyedTransient(serviceKey, (sp, key) => sp.GetRequiredKeyedService<RwSplitDataSource>(key).CreateConnection());
        services.TryAddKeyedTransient<DbConnection>(serviceKey, (sp, key) => sp.GetRequiredKeyedService<RwSplitConnection>(key));
        return services;
    }

    private static void AddOptions(IServiceCollection services, string optionsName, string? dataSourceName, Action<RwSplitOptions> configure)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RwSplitOptions>, RwSplitOptionsValidator>());
        services.TryAddSingleton<RwSplitRecovery>();
        services.AddOptions<RwSplitOptions>(optionsName)
            .Configure(configure)
            .PostConfigure<IServiceProvider>((options, sp) =>
            {
                options.LoggerFactory ??= sp.GetService<ILoggerFactory>();
                options.Recovery ??= sp.GetRequiredService<RwSplitRecovery>();
                if (dataSourceName is not null && options.Name == "default")
                    options.Name = dataSourceName;
            })
            .ValidateOnStart();
    }

    private static RwSplitDataSource Create(IServiceProvider services, string optionsName)
        => new(services.GetRequiredService<IOptionsMonitor<RwSplitOptions>>().Get(optionsName));
}
