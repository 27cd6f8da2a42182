using System;
using System.Collections.Generic;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RwSplit;
using RwSplit.HealthChecks;

// In the DI namespace, as Microsoft's and the community's health checks are, so that AddRwSplit is found without a using.
#pragma warning disable IDE0130
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Adds <see cref="RwSplitHealthCheck"/>s to an <see cref="IHealthChecksBuilder"/>.</summary>
public static class RwSplitHealthChecksBuilderExtensions
{
    /// <summary>The registration's name when none is given: <c>rwsplit</c> (keyed: <c>rwsplit-{key}</c>).</summary>
    public const string DefaultName = "rwsplit";

    /// <summary>
    /// Checks the <see cref="RwSplitDataSource"/> registered with <c>services.AddReadWriteSplit(...)</c>, from its topology
    /// monitor's state: no query per probe.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name; default <c>rwsplit</c>.</param>
    /// <param name="failureStatus">The status reported when the check fails (no writable primary, stale monitor); default <see cref="HealthStatus.Unhealthy"/>.</param>
    /// <param name="tags">Tags to filter checks by (for example in <c>MapHealthChecks</c>).</param>
    /// <param name="timeout">How long the check may take.</param>
    /// <param name="configure">Sets thresholds; those left unset are derived from the data source's options.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddRwSplit(
        this IHealthChecksBuilder builder,
        string? name = null,
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null,
        TimeSpan? timeout = null,
        Action<RwSplitHealthCheckOptions>? configure = null)
        => Add(builder, name ?? DefaultName, sp => sp.GetRequiredService<RwSplitDataSource>(), failureStatus, tags, timeout, configure);

    /// <summary>
    /// Checks the keyed <see cref="RwSplitDataSource"/> registered with <c>services.AddReadWriteSplit(serviceKey, ...)</c>.
    /// (A method of its own rather than an overload of <see cref="AddRwSplit(IHealthChecksBuilder, string?, HealthStatus?, IEnumerable{string}?, TimeSpan?, Action{RwSplitHealthCheckOptions}?)"/>:
    /// a string key would otherwise bind to its <c>name</c>.)
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="serviceKey">The key the data source was registered with.</param>
    /// <param name="name">The check's name; default <c>rwsplit-{key}</c>.</param>
    /// <param name="failureStatus">The status reported when the check fails; default <see cref="HealthStatus.Unhealthy"/>.</param>
    /// <param name="tags">Tags to filter checks by.</param>
    /// <param name="timeout">How long the check may take.</param>
    /// <param name="configure">Sets thresholds; those left unset are derived from the data source's options.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddKeyedRwSplit(
        this IHealthChecksBuilder builder,
        object serviceKey,
        string? name = null,
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null,
        TimeSpan? timeout = null,
        Action<RwSplitHealthCheckOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(serviceKey);
        return Add(builder, name ?? $"{DefaultName}-{serviceKey}", sp => sp.GetRequiredKeyedService<RwSplitDataSource>(serviceKey), failureStatus, tags, timeout, configure);
    }

    /// <summary>Checks the <see cref="RwSplitDataSource"/> <paramref name="dataSourceFactory"/> returns (one not in the container, or chosen at run time).</summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="dataSourceFactory">Returns the data source to check; called on each check run, so return a long-lived instance.</param>
    /// <param name="name">The check's name; default <c>rwsplit</c>.</param>
    /// <param name="failureStatus">The status reported when the check fails; default <see cref="HealthStatus.Unhealthy"/>.</param>
    /// <param name="tags">Tags to filter checks by.</param>
    /// <param name="timeout">How long the check may take.</param>
    /// <param name="configure">Sets thresholds; those left unset are derived from the data source's options.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddRwSplit(
        this IHealthChecksBuilder builder,
        Func<IServiceProvider, RwSplitDataSource> dataSourceFactory,
        string? name = null,
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null,
        TimeSpan? timeout = null,
        Action<RwSplitHealthCheckOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(dataSourceFactory);
        return Add(builder, name ?? DefaultName, dataSourceFactory, failureStatus, tags, timeout, configure);
    }

    private static IHealthChecksBuilder Add(
        IHealthChecksBuilder builder,
        string name,
        Func<IServiceProvider, RwSplitDataSource> dataSource,
        HealthStatus? failureStatus,
        IEnumerable<string>? tags,
        TimeSpan? timeout,
        Action<RwSplitHealthCheckOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new RwSplitHealthCheckOptions();
        configure?.Invoke(options);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new RwSplitHealthCheck(dataSource(sp), options),
            failureStatus,
            tags,
            timeout));
    }
}
