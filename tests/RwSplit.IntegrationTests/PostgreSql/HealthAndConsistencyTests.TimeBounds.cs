using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>
/// The command's timeout bounds the whole logical execution, RwSplit's own waits included, and <c>Cancel()</c> ends
/// them: with both replicas' replay paused (they never catch up) and with a primary whose fallback budget is full.
/// </summary>
public sealed partial class HealthAndConsistencyTests
{
    [Test]
    [Order(10)] // before the failover (Order 99): it leaves no replica behind
    [CancelAfter(60_000)]
    public async Task The_command_timeout_bounds_the_read_your_writes_wait_for_replicas_that_never_catch_up([Values] bool async)
    {
        var (dataSource, connection, read, _) = await ReadAfterWriteBehindPausedReplicasAsync("rwsplit-timeout-ryw", o => o.ReadYourWritesTimeout = TimeSpan.FromSeconds(20));
        await using var disposeDataSource = dataSource;
        await using var disposeConnection = connection;
        await using var disposeRead = read;
        read.CommandTimeout = 1;

        var watch = Stopwatch.StartNew();
        var ex = async
            ? Assert.ThrowsAsync<RwSplitException>(async () => await read.ExecuteScalarAsync())
            : Assert.Throws<RwSplitException>(() => read.ExecuteScalar());
        watch.Stop();
        TestContext.Out.WriteLine($"{(async ? "async" : "sync")}: failed after {watch.Elapsed.TotalMilliseconds:0} ms: {ex!.Message}");
        Assert.That(ex.Error, Is.EqualTo(RwSplitError.CommandTimeout));
        Assert.That(ex.InnerException, Is.InstanceOf<TimeoutException>());
        Assert.That(ex.IsTransient, Is.True);
        Assert.That(ex.Message, Does.Contain("read-your-writes").And.Contain("CommandTimeout").And.Not.Contain("rows"), "names the wait and the fix, never the SQL");
        Assert.That(watch.Elapsed, Is.GreaterThan(TimeSpan.FromMilliseconds(900)).And.LessThan(TimeSpan.FromSeconds(5)), "the 1 s timeout, not the 20 s read-your-writes wait");
        Assert.That(read.CommandTimeout, Is.EqualTo(1), "the application's setting is unchanged");

        // Without a tight timeout, a read after a write still gets the wait's chance and then the primary.
        await using (var quick = Create(
            o =>
            {
                o.ReadYourWritesTimeout = TimeSpan.FromMilliseconds(200);
                o.ReadAfterWrite = ReadAfterWrite.WaitForReplica;
            },
            app: "rwsplit-timeout-ryw2"))
        {
            await quick.RefreshTopologyAsync();
            await using var other = await quick.OpenConnectionAsync();
            var otherId = await InsertAsync(other, "timeout-ryw");
            await using var otherRead = other.CreateCommand();
            otherRead.CommandText = $"SELECT count(*) FROM rows WHERE id = {otherId}";
            Assert.That(Convert.ToInt64(await otherRead.ExecuteScalarAsync()), Is.EqualTo(1), "read-your-writes still holds: the primary answers after the wait");
        }
    }

    [Test]
    [Order(11)] // before the failover (Order 99): it leaves no replica behind
    [CancelAfter(60_000)]
    public async Task Cancel_ends_the_read_your_writes_wait([Values] bool async)
    {
        var (dataSource, connection, read, _) = await ReadAfterWriteBehindPausedReplicasAsync("rwsplit-cancel-ryw", o => o.ReadYourWritesTimeout = TimeSpan.FromSeconds(20));
        await using var disposeDataSource = dataSource;
        await using var disposeConnection = connection;
        await using var disposeRead = read;

        var watch = Stopwatch.StartNew();
        var running = async ? read.ExecuteScalarAsync() : Task.Run(() => read.ExecuteScalar());
        await Task.Delay(500);
        Assert.That(running.IsCompleted, Is.False, "counter-check: the read is waiting for a replica");
        read.Cancel();
        Assert.That(async () => await running, Throws.InstanceOf<OperationCanceledException>().With.Message.Contain("Cancel()"));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "ended by Cancel(), not by the 20 s wait");

        // Cancel() with nothing running changes nothing, as the providers' does.
        read.Cancel();
        read.CommandText = "SELECT 1";
        Assert.That(Convert.ToInt32(await read.ExecuteScalarAsync()), Is.EqualTo(1));
    }

    /// <summary>
    /// The default (<see cref="ReadAfterWrite.OpenPrimary"/>): with both replicas' replay paused and a 20 s
    /// read-your-writes wait allowed, a read right after a write runs at once on the primary connection the write used,
    /// and sees the write; RwSplit's routing says so, and so does the server that answered.
    /// </summary>
    [Test]
    [Order(11)] // before the failover (Order 99): it leaves no replica behind
    [CancelAfter(60_000)]
    public async Task A_read_after_a_write_runs_at_once_on_the_open_primary_by_default([Values] bool async)
    {
        foreach (var replica in _cluster.Replicas)
            await replica.PauseReplayAsync();
        await using var dataSource = Create(o => o.ReadYourWritesTimeout = TimeSpan.FromSeconds(20), app: "rwsplit-open-primary");
        await dataSource.RefreshTopologyAsync();
        await using var connection = await dataSource.OpenConnectionAsync();
        var id = await InsertAsync(connection, "open-primary");
        await using var read = connection.CreateCommand();
        read.CommandText = $"SELECT inet_server_port() FROM rows WHERE id = {id}";

        var watch = Stopwatch.StartNew();
        var port = async ? await read.ExecuteScalarAsync() : read.ExecuteScalar();
        watch.Stop();
        Assert.That(port, Is.EqualTo(_primaryPort), "the row is there, read on the primary");
        Assert.That(read.LastDecision, Is.EqualTo(Routing.RoutingDecision.ToPrimary(Routing.RoutingReason.ReadAfterWrite)));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)), "no wait for the paused replicas");

        // A connection that did not write still reads a replica (paused, so it misses the row: eventual for others).
        await using var other = await dataSource.OpenConnectionAsync();
        await using var otherRead = other.CreateCommand();
        otherRead.CommandText = read.CommandText;
        Assert.That(async ? await otherRead.ExecuteScalarAsync() : otherRead.ExecuteScalar(), Is.Null);
        Assert.That(otherRead.LastDecision?.Target, Is.EqualTo(Routing.RouteTarget.Replica));
    }

    [Test]
    [Order(12)] // before the failover (Order 99): it leaves no replica behind
    [CancelAfter(90_000)]
    public async Task The_command_timeout_and_Cancel_bound_the_wait_for_a_fallback_slot_of_a_full_primary([Values] bool async)
    {
        foreach (var replica in _cluster.Replicas)
            await replica.PauseReplayAsync();
        await using var dataSource = Create(
            o =>
            {
                o.ReadYourWritesTimeout = TimeSpan.Zero; // a read after a write goes straight to the primary, taking a fallback slot
                o.ReadAfterWrite = ReadAfterWrite.WaitForReplica; // (on the open primary connection, OpenPrimary's reads take none)
                o.FallbackReadLimit = 1;
                o.FallbackOverflow = FallbackOverflow.Wait;
                o.FallbackWaitTimeout = TimeSpan.FromSeconds(20);
                o.ReadOnlyFunctions.Add("pg_sleep"); // so that the slot holder's slow statement is a read
            },
            app: "rwsplit-timeout-fallback");
        await dataSource.RefreshTopologyAsync();

        // The one slot is held by a slow read after a write.
        await using var holder = await dataSource.OpenConnectionAsync();
        await InsertAsync(holder, "fallback-holder");
        await using var slow = holder.CreateCommand();
        slow.CommandText = "SELECT pg_sleep(6)";
        var holding = slow.ExecuteScalarAsync();
        await Task.Delay(500);
        Assert.That(slow.LastDecision?.Reason, Is.EqualTo(Routing.RoutingReason.ReadYourWrites), "counter-check: the holder reads on the primary for want of a replica");

        await using var connection = await dataSource.OpenConnectionAsync();
        var id = await InsertAsync(connection, "fallback-waiter");
        await using var read = connection.CreateCommand();
        read.CommandText = $"SELECT count(*) FROM rows WHERE id = {id}";
        read.CommandTimeout = 1;
        var watch = Stopwatch.StartNew();
        var ex = async
            ? Assert.ThrowsAsync<RwSplitException>(async () => await read.ExecuteScalarAsync())
            : Assert.Throws<RwSplitException>(() => read.ExecuteScalar());
        TestContext.Out.WriteLine($"timeout after {watch.Elapsed.TotalMilliseconds:0} ms: {ex!.Message}");
        Assert.That(ex.Error, Is.EqualTo(RwSplitError.CommandTimeout), "the command's timeout, not the 20 s FallbackWaitTimeout");
        Assert.That(ex.Message, Does.Contain("fallback slot"));
        Assert.That(watch.Elapsed, Is.GreaterThan(TimeSpan.FromMilliseconds(900)).And.LessThan(TimeSpan.FromSeconds(5)));

        read.CommandTimeout = 30;
        watch.Restart();
        var waiting = async ? read.ExecuteScalarAsync() : Task.Run(() => read.ExecuteScalar());
        await Task.Delay(300);
        Assert.That(waiting.IsCompleted, Is.False, "counter-check: waiting for the slot");
        read.Cancel();
        Assert.That(async () => await waiting, Throws.InstanceOf<OperationCanceledException>().With.Message.Contain("fallback slot"));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));

        await holding; // the holder was never disturbed
        Assert.That(slow.LastDecision?.Reason, Is.EqualTo(Routing.RoutingReason.ReadYourWrites));
    }

    /// <summary>Both replicas' replay paused, a data source over them, and a connection that wrote a row and will read it.</summary>
    private async Task<(RwSplitDataSource DataSource, RwSplitConnection Connection, RwSplitCommand Read, long Id)> ReadAfterWriteBehindPausedReplicasAsync(string app, Action<RwSplitOptions> configure)
    {
        foreach (var replica in _cluster.Replicas)
            await replica.PauseReplayAsync();
        var dataSource = Create(
            o =>
            {
                o.ReadAfterWrite = ReadAfterWrite.WaitForReplica; // the reads wait for a replica (the default reads the open primary at once)
                configure(o);
            },
            app);
        await dataSource.RefreshTopologyAsync();
        var connection = await dataSource.OpenConnectionAsync();
        var id = await InsertAsync(connection, app);
        var read = connection.CreateCommand();
        read.CommandText = $"SELECT count(*) FROM rows WHERE id = {id}";
        return (dataSource, connection, read, id);
    }

    private static async Task<long> InsertAsync(RwSplitConnection connection, string note)
    {
        var id = Interlocked.Increment(ref _nextId);
        await using var insert = connection.CreateCommand();
        insert.CommandText = $"INSERT INTO rows (id, worker, note) VALUES ({id}, 0, '{note}')";
        await insert.ExecuteNonQueryAsync();
        return id;
    }
}
