using System;
using System.Data.Common;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Providers;

namespace RwSplit.Transactions;

/// <summary>
/// What the coordinator and recovery need to know about one data source's database, learned once and cached: its
/// identity (the key that branch ids name the decision database by), whether its decision table exists, and whether it
/// allows prepared transactions.
/// </summary>
internal sealed class DataSourceTransactions
{
    private readonly RwSplitDataSource _dataSource;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _key;
    private bool _decisionTableReady;
    private int? _maxPrepared;

    public DataSourceTransactions(RwSplitDataSource dataSource, RwSplitOptions options)
    {
        _dataSource = dataSource;
        Enabled = options.DistributedTransactions;
        AutoCreateDecisionTable = options.AutoCreateDecisionTable;
        AllowHeuristicCommit = options.AllowHeuristicCommit;
        RecoveryGracePeriod = options.RecoveryGracePeriod;
        RecoveryInterval = options.RecoveryInterval;
    }

    /// <summary>Whether the data source takes part in distributed transactions and is registered for recovery.</summary>
    public bool Enabled { get; }

    public bool AutoCreateDecisionTable { get; }

    /// <summary>Whether the data source may commit after the decision as a heuristic participant (SQL Server only).</summary>
    public bool AllowHeuristicCommit { get; }

    public TimeSpan RecoveryGracePeriod { get; }

    public TimeSpan RecoveryInterval { get; }

    /// <summary>The cached key, or null before <see cref="GetKeyAsync"/> succeeded once.</summary>
    public string? CachedKey => _key;

    /// <summary>16 hex digits identifying the database (hash of the dialect's database identity).</summary>
    public async ValueTask<string> GetKeyAsync(bool async, CancellationToken cancellationToken)
    {
        if (_key is not null)
            return _key;
        var identity = await ScalarAsync(_dataSource.Dialect.Distributed.DatabaseIdentitySql, async, cancellationToken).ConfigureAwait(false);
        var text = Convert.ToString(identity, CultureInfo.InvariantCulture) ?? throw new InvalidOperationException("The database identity query returned nothing.");
        return _key = Routing.ConsistencyToken.HashIdentity(text).ToString("x16", CultureInfo.InvariantCulture);
    }

    /// <summary>Fails, before anything is committed, when the server cannot hold prepared transactions.</summary>
    public async ValueTask EnsureCanPrepareAsync(bool async, CancellationToken cancellationToken)
    {
        var sql = _dataSource.Dialect.Distributed.MaxPreparedTransactionsSql;
        if (sql is null)
            return;
        if (_maxPrepared is null)
        {
            var value = await ScalarAsync(sql, async, cancellationToken).ConfigureAwait(false);
            _maxPrepared = Convert.ToInt32(value, CultureInfo.InvariantCulture);
        }

        if (_maxPrepared <= 0)
        {
            throw new RwSplitException(
                RwSplitError.DistributedTransactionUnavailable,
                $"max_prepared_transactions is 0 on {_dataSource.CurrentPrimaryAddress} (data source '{_dataSource.Name}'), so it cannot take part in a distributed transaction that writes to several databases: set max_prepared_transactions to at least the number of concurrent distributed transactions (and max_connections or more) in postgresql.conf, and restart the server. Nothing was committed.");
        }
    }

    /// <summary>Creates the decision table on first use (or checks it exists, when auto-creation is off).</summary>
    public async ValueTask EnsureDecisionTableAsync(bool async, CancellationToken cancellationToken)
    {
        if (_decisionTableReady)
            return;
        await ProviderIo.WaitAsync(_gate, async, cancellationToken).ConfigureAwait(false);
        try
        {
            if (_decisionTableReady)
                return;
            if (AutoCreateDecisionTable)
            {
                await ExecuteAsync(_dataSource.Dialect.Distributed.CreateDecisionTableSql, async, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                try
                {
                    await ExecuteAsync(_dataSource.Dialect.Distributed.SelectDecisionSql.Replace("@gtrid", "''", StringComparison.Ordinal), async, cancellationToken).ConfigureAwait(false);
                }
                catch (DbException ex)
                {
                    throw new RwSplitException(
                        RwSplitError.DistributedTransactionUnavailable,
                        $"The decision table rwsplit_decisions does not exist in {_dataSource.CurrentPrimaryAddress} and AutoCreateDecisionTable is off: run the script in docs/transactions.md (RwSplitDialect.CreateDecisionTableSql) as a DBA, or turn AutoCreateDecisionTable on.",
                        ex);
                }
            }

            _decisionTableReady = true;
        }
        finally
        {
            _gate.Release();
        }
    }

    internal ValueTask<object?> ScalarAsync(string sql, bool async, CancellationToken cancellationToken)
        => ProviderCalls.ScalarAsync(_dataSource, sql, async, cancellationToken);

    private async ValueTask ExecuteAsync(string sql, bool async, CancellationToken cancellationToken)
        => await ScalarAsync(sql, async, cancellationToken).ConfigureAwait(false);
}
