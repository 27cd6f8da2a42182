using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using Npgsql;
using RwSplit.PostgreSql;
using RwSplit.Transactions;

namespace RwSplit.TransferWorkload;

/// <summary>
/// Two PostgreSQL databases with ten accounts each; a transfer moves money from an account in one to an account in the
/// other inside one TransactionScope. The total over both databases never changes — unless atomicity is lost.
/// </summary>
public sealed class Bank
{
    public const int AccountsPerDatabase = 10;
    public const long InitialBalance = 1000;
    public const long ExpectedTotal = 2 * AccountsPerDatabase * InitialBalance;

    public Bank(string database1, string database2)
    {
        Database1 = database1;
        Database2 = database2;
    }

    public string Database1 { get; }

    public string Database2 { get; }

    /// <summary>Creates the accounts in both databases (rolling back any prepared transaction left over).</summary>
    public async Task ResetAsync()
    {
        foreach (var cs in new[] { Database1, Database2 })
        {
            await RollbackAllPreparedAsync(cs);
            await using var connection = new NpgsqlConnection(cs);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                $"""
                DROP TABLE IF EXISTS bank_accounts;
                CREATE TABLE bank_accounts (id int PRIMARY KEY, balance bigint NOT NULL);
                INSERT INTO bank_accounts SELECT g, {InitialBalance} FROM generate_series(1, {AccountsPerDatabase}) g;
                """, connection);
            await command.ExecuteNonQueryAsync();
        }
    }

    /// <summary>The total over both databases.</summary>
    public async Task<long> TotalAsync() => await SumAsync(Database1) + await SumAsync(Database2);

    /// <summary>Prepared transactions of both databases (RwSplit's and any other's), as "database: gid".</summary>
    public async Task<List<string>> PreparedAsync()
    {
        var result = new List<string>();
        foreach (var cs in new[] { Database1, Database2 })
        {
            await using var connection = new NpgsqlConnection(cs);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                result.Add($"{connection.Database}@{connection.Port}: {reader.GetString(0)}");
        }

        return result;
    }

    /// <summary>Rolls back every prepared transaction of the database (cleanup after the plain-Npgsql runs, which leave orphans).</summary>
    public static async Task<int> RollbackAllPreparedAsync(string cs)
    {
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        var gids = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
                gids.Add(reader.GetString(0));
        }

        foreach (var gid in gids)
        {
            await using var rollback = new NpgsqlCommand($"ROLLBACK PREPARED '{gid.Replace("'", "''", StringComparison.Ordinal)}'", connection);
            await rollback.ExecuteNonQueryAsync();
        }

        return gids.Count;
    }

    /// <summary>One account's balance.</summary>
    public static async Task<long> BalanceAsync(string cs, int account)
    {
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT balance FROM bank_accounts WHERE id = {account}", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<long> SumAsync(string cs)
    {
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT sum(balance)::bigint FROM bank_accounts", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Data sources over the two databases (primaries only), registered for RwSplit recovery.</summary>
    public (RwSplitDataSource First, RwSplitDataSource Second) CreateDataSources(string application, TimeSpan? grace = null, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null, RwSplit.Transactions.RwSplitRecovery? recovery = null)
    {
        recovery ??= new RwSplit.Transactions.RwSplitRecovery(); // one for both: a branch of one is resolved from the other's decision
        RwSplitDataSource Create(string cs, string name) => RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = new NpgsqlConnectionStringBuilder(cs) { ApplicationName = application, Enlist = true }.ConnectionString; // Enlist=true is overridden
            o.Name = name;
            o.HealthMonitoring = false;
            o.RecoveryGracePeriod = grace ?? TimeSpan.FromMinutes(1);
            o.LoggerFactory = loggerFactory;
            o.Recovery = recovery;
        });
        return (Create(Database1, "bank-1"), Create(Database2, "bank-2"));
    }

    /// <summary>One transfer through RwSplit under a TransactionScope: withdraw in one database, deposit in the other.</summary>
    public static async Task TransferAsync(RwSplitDataSource from, RwSplitDataSource to, int fromAccount, int toAccount, long amount)
    {
        using var scope = new TransactionScope(TransactionScopeOption.Required, new TransactionOptions { IsolationLevel = IsolationLevel.ReadCommitted, Timeout = TimeSpan.FromSeconds(30) }, TransactionScopeAsyncFlowOption.Enabled);
        await using (var a = await from.OpenConnectionAsync())
        await using (var withdraw = a.CreateCommand())
        {
            withdraw.CommandText = "UPDATE bank_accounts SET balance = balance - @amount WHERE id = @id";
            withdraw.Parameters.Add(new NpgsqlParameter("amount", amount));
            withdraw.Parameters.Add(new NpgsqlParameter("id", fromAccount));
            await withdraw.ExecuteNonQueryAsync();
        }

        await using (var b = await to.OpenConnectionAsync())
        await using (var deposit = b.CreateCommand())
        {
            deposit.CommandText = "UPDATE bank_accounts SET balance = balance + @amount WHERE id = @id";
            deposit.Parameters.Add(new NpgsqlParameter("amount", amount));
            deposit.Parameters.Add(new NpgsqlParameter("id", toAccount));
            await deposit.ExecuteNonQueryAsync();
        }

        scope.Complete();
    }

    /// <summary>One transfer through RwSplit's asynchronous API (no TransactionScope).</summary>
    public static async Task TransferWithRwSplitApiAsync(RwSplitDataSource from, RwSplitDataSource to, int fromAccount, int toAccount, long amount)
    {
        await using var transaction = RwSplitDistributedTransaction.Begin(TimeSpan.FromSeconds(30));
        foreach (var (dataSource, sql, account) in new[] { (from, "UPDATE bank_accounts SET balance = balance - @amount WHERE id = @id", fromAccount), (to, "UPDATE bank_accounts SET balance = balance + @amount WHERE id = @id", toAccount) })
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            connection.EnlistDistributedTransaction(transaction);
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            command.Parameters.Add(new NpgsqlParameter("amount", amount));
            command.Parameters.Add(new NpgsqlParameter("id", account));
            await command.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
    }

    /// <summary>The same transfer with plain Npgsql connections enlisting in the TransactionScope (Npgsql's own two-phase commit).</summary>
    public static async Task TransferWithNpgsqlAsync(string from, string to, int fromAccount, int toAccount, long amount)
    {
        using var scope = new TransactionScope(TransactionScopeOption.Required, new TransactionOptions { IsolationLevel = IsolationLevel.ReadCommitted, Timeout = TimeSpan.FromSeconds(30) }, TransactionScopeAsyncFlowOption.Enabled);
        await using (var a = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(from) { Enlist = true }.ConnectionString))
        {
            await a.OpenAsync();
            await using var withdraw = new NpgsqlCommand("UPDATE bank_accounts SET balance = balance - @amount WHERE id = @id", a);
            withdraw.Parameters.AddWithValue("amount", amount);
            withdraw.Parameters.AddWithValue("id", fromAccount);
            await withdraw.ExecuteNonQueryAsync();
        }

        await using (var b = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(to) { Enlist = true }.ConnectionString))
        {
            await b.OpenAsync();
            await using var deposit = new NpgsqlCommand("UPDATE bank_accounts SET balance = balance + @amount WHERE id = @id", b);
            deposit.Parameters.AddWithValue("amount", amount);
            deposit.Parameters.AddWithValue("id", toAccount);
            await deposit.ExecuteNonQueryAsync();
        }

        scope.Complete();
    }

    /// <summary>
    /// Transfers until cancelled (or killed), in both directions. Returns how many committed. With several
    /// <paramref name="workers"/>, each runs its own transfers concurrently on its own accounts (account ids congruent to
    /// the worker's number), so a kill meets that many transactions in flight and the workers never wait for each other's
    /// row locks (a lock cycle across two servers is a deadlock neither server can see).
    /// </summary>
    public async Task<int> RunAsync(string mode, CancellationToken cancellationToken, Action? onFirstCommit = null, bool forwardOnly = false, int workers = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(workers, AccountsPerDatabase);
        var committed = 0;
        RwSplitDataSource? first = null, second = null;
        if (mode == "rwsplit")
            (first, second) = CreateDataSources("rwsplit-transfer-child");
        try
        {
            async Task WorkAsync(int worker)
            {
                var random = new Random();
                var accounts = Enumerable.Range(1, AccountsPerDatabase).Where(a => (a - 1) % workers == worker).ToArray();
                while (!cancellationToken.IsCancellationRequested)
                {
                    var forward = forwardOnly || random.Next(2) == 0; // forward: database 1 is the last resource, database 2 gets prepared
                    var amount = random.Next(1, 50);
                    var fromAccount = accounts[random.Next(accounts.Length)];
                    var toAccount = accounts[random.Next(accounts.Length)];
                    try
                    {
                        if (mode == "rwsplit")
                            await TransferAsync(forward ? first! : second!, forward ? second! : first!, fromAccount, toAccount, amount);
                        else
                            await TransferWithNpgsqlAsync(forward ? Database1 : Database2, forward ? Database2 : Database1, fromAccount, toAccount, amount);
                        if (Interlocked.Increment(ref committed) == 1)
                            onFirstCommit?.Invoke();
                    }
                    catch (TransactionException)
                    {
                        // aborted or in doubt: atomicity (and recovery) keep the total; keep going
                    }
                }
            }

            await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(() => WorkAsync(w), CancellationToken.None)));
        }
        finally
        {
            first?.Dispose();
            second?.Dispose();
        }

        return committed;
    }
}
