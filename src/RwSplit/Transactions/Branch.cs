using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Providers;

namespace RwSplit.Transactions;

/// <summary>The state of one branch of a distributed transaction.</summary>
internal enum BranchState
{
    Active,

    /// <summary>PREPARE TRANSACTION was sent and did not come back with success: the branch may or may not be prepared.</summary>
    PrepareSent,
    Prepared,
    Committed,
    RolledBack,
}

/// <summary>
/// One database's (or, for engines that cannot prepare, one instance's) part of a distributed transaction: one physical
/// connection to the primary and one local transaction, shared by every logical connection of the transaction.
/// </summary>
internal sealed class Branch
{
    public Branch(RwSplitDataSource dataSource, string key, int index, DbConnection connection, DbTransaction transaction)
    {
        DataSource = dataSource;
        Key = key;
        Index = index;
        Connection = connection;
        Transaction = transaction;
        HomeDatabase = connection.Database;
    }

    /// <summary>The data source that opened the branch (the first of its key).</summary>
    public RwSplitDataSource DataSource { get; }

    public string Key { get; }

    public int Index { get; }

    public DbConnection Connection { get; }

    /// <summary>The local transaction; null once prepared or finished.</summary>
    public DbTransaction? Transaction { get; set; }

    public BranchState State { get; set; }

    /// <summary>Whether any statement that writes (or might) ran in the branch.</summary>
    public bool Wrote { get; private set; }

    /// <summary>The prepared-transaction id, once prepared.</summary>
    public string? Gid { get; set; }

    /// <summary>
    /// The database the shared connection is in now, as the provider tracks it (SqlClient follows the server's
    /// ENVCHANGE, so a <c>USE</c> the application ran is seen too): never a cached copy.
    /// </summary>
    public string CurrentDatabase => Connection.Database;

    private List<string>? _sessionList;
    private int _sessionApplied;

    /// <summary>The database of <see cref="DataSource"/>: the one whose key and decision table the protocol uses.</summary>
    public string HomeDatabase { get; }

    public RwSplitDialect Dialect => DataSource.Dialect;

    public void MarkWritten() => Wrote = true;

    /// <summary>For branches that span databases of one instance: switches the shared connection's database.</summary>
    public async ValueTask UseDatabaseAsync(string? database, bool async, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(database) || string.Equals(database, CurrentDatabase, StringComparison.Ordinal))
            return;
        await ProviderIo.ChangeDatabaseAsync(Connection, database, async, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Brings the shared connection's session up to a logical connection's replayed session commands (<c>SET</c>),
    /// inside the branch's transaction: every command of that list when another logical connection (another list) used
    /// the branch last, else only the commands added since.
    /// </summary>
    public async ValueTask ApplySessionAsync(List<string> replay, bool async, CancellationToken cancellationToken)
    {
        var from = ReferenceEquals(_sessionList, replay) ? _sessionApplied : 0;
        for (var i = from; i < replay.Count; i++)
        {
            var command = Connection.CreateCommand();
            await using (command.ConfigureAwait(false))
            {
                command.CommandText = replay[i];
                command.Transaction = Transaction;
                _ = await ProviderIo.ExecuteNonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
            }
        }

        MarkSessionApplied(replay);
    }

    /// <summary>Records that the session holds <paramref name="replay"/> (a session command just ran on the branch itself).</summary>
    public void MarkSessionApplied(List<string> replay)
    {
        _sessionList = replay;
        _sessionApplied = replay.Count;
    }

    public override string ToString() => $"branch {Index} ({Key}, {State}{(Wrote ? ", wrote" : "")})";
}
