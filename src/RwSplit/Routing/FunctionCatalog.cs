using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using RwSplit.Diagnostics;
using RwSplit.Providers;
using RwSplit.Topology;

namespace RwSplit.Routing;

/// <summary>
/// The volatility of the database's functions (PostgreSQL <c>pg_proc</c>), loaded on first need (from a replica when one
/// answers, since physical replicas share the primary's catalog; else from the primary) and
/// reloaded every <see cref="RwSplitOptions.FunctionCatalogRefreshInterval"/>. While it is not loaded, reads that call
/// functions are treated as unknown (primary): fail closed.
/// </summary>
internal sealed class FunctionCatalog : IDisposable
{
    private readonly StatementClassifier _classifier;
    private readonly Endpoint[] _sources;
    private readonly IReadOnlySet<string> _readOnly;
    private readonly long _refreshTicks;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _loadLock = new(1, 1);
    private volatile Snapshot? _snapshot;
    private long _nextAttempt;

    public FunctionCatalog(StatementClassifier classifier, Endpoint[] sources, IReadOnlySet<string> readOnlyFunctions, TimeSpan refresh, ILogger logger)
    {
        _classifier = classifier;
        _sources = sources;
        _logger = logger;
        _refreshTicks = (long)(refresh.TotalSeconds * Stopwatch.Frequency);
        var readOnly = new HashSet<string>(readOnlyFunctions, StringComparer.OrdinalIgnoreCase);
        readOnly.UnionWith(classifier.ReadOnlyVolatileFunctions);
        _readOnly = readOnly;
    }

    /// <summary>Increments on every (re)load: cached per-command facts computed against an older catalog are stale.</summary>
    public int Version => _snapshot?.Version ?? 0;

    /// <summary>Decides what a read calling <paramref name="functions"/> is: <see cref="StatementKind.Read"/> when every
    /// function is known and cannot write, else <see cref="StatementKind.Unknown"/>.</summary>
    public async ValueTask<StatementKind> ClassifyCallsAsync(IReadOnlyList<string> functions, bool async, CancellationToken cancellationToken)
    {
        var snapshot = await GetAsync(async, cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < functions.Count; i++)
        {
            var name = functions[i];
            if (_readOnly.Contains(name))
                continue;
            if (snapshot is null || !snapshot.Functions.TryGetValue(name, out var volatility) || volatility == FunctionVolatility.Volatile)
                return StatementKind.Unknown;
        }

        return StatementKind.Read;
    }

    private async ValueTask<Snapshot?> GetAsync(bool async, CancellationToken cancellationToken)
    {
        var snapshot = _snapshot;
        var now = Stopwatch.GetTimestamp();
        if (snapshot is not null && now < snapshot.LoadedAt + _refreshTicks)
            return snapshot;
        if (now < Interlocked.Read(ref _nextAttempt))
            return snapshot; // a recent load failed: do not hammer the primary; fail closed meanwhile

        // One loader at a time; others keep using the old snapshot (or fail closed) instead of waiting.
        var entered = await ProviderIo.TryWaitAsync(_loadLock, TimeSpan.Zero, async, cancellationToken).ConfigureAwait(false);
        if (!entered)
            return snapshot;
        try
        {
            snapshot = _snapshot;
            if (snapshot is not null && Stopwatch.GetTimestamp() < snapshot.LoadedAt + _refreshTicks)
                return snapshot;
            foreach (var source in _sources)
            {
                if (!source.IsAvailable(Stopwatch.GetTimestamp()))
                    continue;
                try
                {
                    var functions = await LoadAsync(source, async, cancellationToken).ConfigureAwait(false);
                    var loaded = new Snapshot(functions, Stopwatch.GetTimestamp(), (snapshot?.Version ?? 0) + 1);
                    _snapshot = loaded;
                    Log.FunctionCatalogLoaded(_logger, functions.Count, source.Address);
                    return loaded;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.FunctionCatalogFailed(_logger, source.Address, ex);
                }
            }

            Interlocked.Exchange(ref _nextAttempt, Stopwatch.GetTimestamp() + Stopwatch.Frequency * 5);
            return snapshot;
        }
        finally
        {
            _loadLock.Release();
        }
    }

    private async ValueTask<Dictionary<string, FunctionVolatility>> LoadAsync(Endpoint source, bool async, CancellationToken cancellationToken)
    {
        var functions = new Dictionary<string, FunctionVolatility>(StringComparer.Ordinal);
        var connection = source.Connector.CreateConnection();
        await using var connectionScope = connection.ConfigureAwait(false);
        await ProviderIo.OpenAsync(connection, async, cancellationToken).ConfigureAwait(false);
        var command = connection.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = _classifier.FunctionCatalogQuery;
            var reader = await ProviderIo.ExecuteReaderAsync(command, async, cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await ProviderIo.ReadAsync(reader, async, cancellationToken).ConfigureAwait(false))
                {
                    var name = reader.GetString(0);
                    var code = reader.GetValue(1)?.ToString();
                    var volatility = code switch
                    {
                        "i" => FunctionVolatility.Immutable,
                        "s" => FunctionVolatility.Stable,
                        _ => FunctionVolatility.Volatile,
                    };
                    if (!functions.TryGetValue(name, out var existing) || existing < volatility)
                        functions[name] = volatility;
                }
            }
        }

        return functions;
    }

    public void Dispose() => _loadLock.Dispose();

    private sealed record Snapshot(IReadOnlyDictionary<string, FunctionVolatility> Functions, long LoadedAt, int Version);
}
