using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text.Json;
using System.Threading.Tasks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace RwSplit.OperationsTests.HealthChecks;

/// <summary>A container with RwSplit and its health checks, and the waits the tests need.</summary>
internal sealed class HealthHarness : IAsyncDisposable
{
    private readonly ServiceProvider _services;

    public HealthHarness(Action<IServiceCollection> configure)
    {
        var services = new ServiceCollection();
        services.AddSingleton<ILoggerFactory>(NullLoggerFactory.Instance);
        services.AddSingleton(typeof(ILogger<>), typeof(NullLogger<>));
        configure(services);
        _services = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    public IServiceProvider Services => _services;

    public Task<HealthReport> CheckAsync() => _services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

    /// <summary>Checks until <paramref name="until"/> holds for the entry <paramref name="name"/>, at most <paramref name="timeout"/>; returns that entry.</summary>
    public async Task<HealthReportEntry> WaitForAsync(string name, Func<HealthReportEntry, bool> until, TimeSpan timeout, string what)
    {
        var watch = Stopwatch.StartNew();
        HealthReportEntry entry;
        do
        {
            entry = (await CheckAsync()).Entries[name];
            if (until(entry))
                return entry;
            await Task.Delay(100);
        }
        while (watch.Elapsed < timeout);

        Assert.Fail($"Waited {timeout.TotalSeconds} s for {what}; last: {entry.Status}: {entry.Description}");
        return entry;
    }

    public Task<HealthReportEntry> WaitForStatusAsync(string name, HealthStatus status, TimeSpan timeout, string? reason = null)
        => WaitForAsync(name, e => e.Status == status && (reason is null || e.Description!.Contains(reason, StringComparison.Ordinal)), timeout, $"{status}{(reason is null ? "" : $" ({reason})")}");

    /// <summary>An endpoint's entry in the data (<c>primary</c>, <c>replica0</c>, …).</summary>
    public static IReadOnlyDictionary<string, object> Endpoint(HealthReportEntry entry, string key)
        => (IReadOnlyDictionary<string, object>)entry.Data[key];

    /// <summary>The entry's data as a JSON writer would publish it.</summary>
    public static string Json(HealthReportEntry entry)
        => JsonSerializer.Serialize(entry.Data.ToDictionary(p => p.Key, p => p.Value)) + entry.Description;

    public ValueTask DisposeAsync() => _services.DisposeAsync();
}
