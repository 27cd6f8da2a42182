using System;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;
using RwSplit.EntityFrameworkCore;
using RwSplit.SqlServer;
using RwSplit.Tds;

// Not under RwSplit.EntityFrameworkCoreTests: that namespace's set-up fixture starts PostgreSQL, which these tests never need.
namespace RwSplit.EfTdsTests;

public sealed class Note
{
    public int Id { get; set; }

    public string Text { get; set; } = "";
}

public sealed class NotesContext(DbContextOptions<NotesContext> options) : DbContext(options)
{
    public DbSet<Note> Notes => Set<Note>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
        => modelBuilder.Entity<Note>(b =>
        {
            b.ToTable("notes");
            b.Property(n => n.Id).HasColumnName("id");
            b.Property(n => n.Text).HasColumnName("text");
        });
}

/// <summary>
/// EF Core's SQL Server provider over RwSplit, through the real SqlClient against the scripted TDS server: a primary
/// and a readable secondary, each answering EF's statements with rows that say which server answered.
/// </summary>
[TestFixture]
public sealed class EfSqlServerTdsTests
{
    private TdsServer _primary = null!;
    private TdsServer _secondary = null!;
    private string _application = "";
    private static int s_tests;

    [SetUp]
    public void Start()
    {
        _application = $"rwsplit-ef-tds-{++s_tests}";
        _primary = TdsServer.Start("sql-primary");
        _secondary = TdsServer.Start("sql-secondary", TdsServerRole.Secondary);
        foreach (var server in new[] { _primary, _secondary })
        {
            var answer = new TdsResultSet(TdsColumn.Int("id"), TdsColumn.NVarChar("text")).Row(1, $"read on {server.Name}");
            server.On(TdsMatch.Where(r => r.Text is { } t && t.StartsWith("SELECT", StringComparison.Ordinal) && t.Contains("[n].[id], [n].[text]", StringComparison.Ordinal), "EF's query of notes")).Reply(TdsReply.Rows(answer));
        }

        _primary.OnText("SELECT 1", TdsReply.Scalar(TdsType.Int, 1)); // EF's existence check (CanConnect)

        // A standby would refuse it: only the primary is scripted to take EF's insert (with its OUTPUT of the new key).
        _primary.On(TdsMatch.Where(r => r.Text is { } t && t.Contains("INSERT INTO [notes]", StringComparison.Ordinal), "EF's insert")).Reply(TdsReply.Rows(new TdsResultSet(TdsColumn.Int("id")).Row(7)));
    }

    [TearDown]
    public async Task StopAsync()
    {
        SqlConnection.ClearAllPools();
        var errors = _primary.ProtocolErrors.Concat(_secondary.ProtocolErrors).ToArray();
        await _primary.DisposeAsync();
        await _secondary.DisposeAsync();
        Assert.That(errors, Is.Empty, "the TDS servers reported protocol errors");
    }

    private string PrimaryString => _primary.ConnectionString() + $";Application Name={_application}";

    private RwSplitDataSource CreateDataSource(ReadConsistency consistency = ReadConsistency.Eventual) => RwSplitDataSource.Create(o =>
    {
        o.UseSqlServer();
        o.Primary = PrimaryString;
        o.Replicas.Add(_secondary.ConnectionString() + $";Application Name={_application}");
        o.HealthMonitoring = false;
        o.Consistency = consistency; // Eventual: what is measured is the pin, not read-your-writes
    });

    private static async Task<string> ReadAsync(NotesContext context) => (await context.Notes.AsNoTracking().SingleAsync()).Text;

    [Test]
    public async Task SaveChanges_runs_on_the_primary_and_does_not_pin_the_next_read_to_it()
    {
        await using var dataSource = CreateDataSource();
        await using var context = new NotesContext(new DbContextOptionsBuilder<NotesContext>().UseSqlServer().UseRwSplit(dataSource).Options);

        Assert.That(await ReadAsync(context), Is.EqualTo("read on sql-secondary"));
        context.Notes.Add(new Note { Text = "written" });
        await context.SaveChangesAsync();
        var insert = _primary.ApplicationRequests.Single(r => r.Text is { } t && t.Contains("INSERT INTO [notes]", StringComparison.Ordinal));
        Assert.That(insert.Text, Does.Contain("SET NOCOUNT ON"), "EF's batch carries SET NOCOUNT ON (and SET IMPLICIT_TRANSACTIONS OFF)");
        Assert.That(context.Notes.Local.Single().Id, Is.EqualTo(7), "the key the primary's OUTPUT returned");

        await context.Database.OpenConnectionAsync();
        try
        {
            Assert.That(await ReadAsync(context), Is.EqualTo("read on sql-secondary"), "the read after SaveChanges goes to the secondary: the SET options did not pin");
            context.ChangeTracker.Clear();
            context.Notes.Add(new Note { Text = "written again" });
            await context.SaveChangesAsync();
            Assert.That(((RwSplitConnection)context.Database.GetDbConnection()).PinnedReason, Is.Null);
            Assert.That(await ReadAsync(context), Is.EqualTo("read on sql-secondary"), "not even within one open connection");
        }
        finally
        {
            await context.Database.CloseConnectionAsync();
        }
    }

    [Test]
    public async Task The_drop_in_connection_string_works_under_EF()
    {
        var dropIn = PrimaryString + $";Replicas={_secondary.DataSource};Read Consistency=Eventual";
        var options = new DbContextOptionsBuilder<NotesContext>().UseSqlServer().UseRwSplit(RwSplitSqlServer.Factory, dropIn).Options;
        await using (var context = new NotesContext(options))
        {
            Assert.That(await ReadAsync(context), Is.EqualTo("read on sql-secondary"), "EF SQL Server parses the connection's string on every query: it no longer sees Replicas=");
            Assert.That(context.Database.GetDbConnection().ConnectionString, Does.Not.Contain("Replicas").IgnoreCase.And.Not.Contain("Password").IgnoreCase);
            Assert.That(new SqlConnectionStringBuilder(context.Database.GetConnectionString()).DataSource, Is.EqualTo(_primary.DataSource), "a string SqlClient's builder accepts");
            context.Notes.Add(new Note { Text = "written" });
            await context.SaveChangesAsync();
        }

        await using (var again = new NotesContext(options))
            Assert.That(await ReadAsync(again), Is.EqualTo("read on sql-secondary"));
        RwSplitSqlServer.Factory.GetDataSource(dropIn).Dispose();
    }

    /// <summary>
    /// EF SQL Server's lifecycle: the existence check logs in to the database (error 4060 when it is missing), CREATE and
    /// DROP DATABASE run on a connection to <c>master</c>, and <c>SqlConnection.ClearPool((SqlConnection)…)</c> casts
    /// the context's connection. All of it reaches the primary, through SqlClient's own connections; none the secondary.
    /// </summary>
    [Test]
    public async Task EnsureCreated_and_EnsureDeleted_run_on_the_primary_through_master([Values] bool async)
    {
        _primary.SetDatabaseMissing("app", true);
        _primary.On(TdsMatch.Where(r => r.Text is { } t && t.Contains("CREATE DATABASE [app]", StringComparison.Ordinal), "CREATE DATABASE")).Reply(_ =>
        {
            _primary.SetDatabaseMissing("app", false);
            return TdsReply.Empty;
        });
        _primary.On(TdsMatch.Where(r => r.Text is { } t && t.Contains("DROP DATABASE [app]", StringComparison.Ordinal), "DROP DATABASE")).Reply(_ =>
        {
            _primary.SetDatabaseMissing("app", true);
            return TdsReply.Empty;
        });
        _primary.On(TdsMatch.Where(r => r.Text is { } t && t.Contains("ALTER DATABASE [app]", StringComparison.Ordinal), "ALTER DATABASE")).Reply(TdsReply.Empty);
        _primary.On(TdsMatch.Where(r => r.Text is { } t && t.Contains("CREATE TABLE [notes]", StringComparison.Ordinal), "CREATE TABLE")).Reply(TdsReply.Empty);

        await using var dataSource = CreateDataSource(ReadConsistency.ReadYourWrites);
        await using var context = new NotesContext(new DbContextOptionsBuilder<NotesContext>().UseSqlServer().UseRwSplit(dataSource).Options);
        Assert.That(async ? await context.Database.EnsureCreatedAsync() : context.Database.EnsureCreated(), Is.True);
        Assert.That(await ReadAsync(context), Is.EqualTo("read on sql-primary"), "the context reads what EnsureCreated did (read-your-writes after a lifecycle command)");
        Assert.That(async ? await context.Database.EnsureDeletedAsync() : context.Database.EnsureDeleted(), Is.True);
        Assert.That(await context.Database.CanConnectAsync(), Is.False, "gone");

        var lifecycle = _primary.ApplicationRequests.Where(r => r.Text is { } t && (t.Contains("CREATE DATABASE", StringComparison.Ordinal) || t.Contains("DROP DATABASE", StringComparison.Ordinal))).ToList();
        Assert.That(lifecycle.Select(r => r.Database), Is.EqualTo(new[] { "master", "master" }), "from master, on the primary");
        Assert.That(_primary.ApplicationRequests.Any(r => r.Text is { } t && t.Contains("CREATE TABLE [notes]", StringComparison.Ordinal) && r.Database == "app"), Is.True);
        Assert.That(_secondary.ApplicationRequests.Where(r => r.Text is { } t && !t.Contains("[n].[id]", StringComparison.Ordinal)), Is.Empty, "the secondary saw only the query");
    }

    [Test]
    public async Task CanConnect_asks_the_primary()
    {
        await using var dataSource = CreateDataSource();
        await using var context = new NotesContext(new DbContextOptionsBuilder<NotesContext>().UseSqlServer().UseRwSplit(dataSource).Options);
        _primary.ClearJournal();
        Assert.That(await context.Database.CanConnectAsync(), Is.True);
        Assert.That(_primary.ApplicationLogins, Is.Not.Empty, "the primary was asked");
        Assert.That(_secondary.ApplicationLogins, Is.Empty, "the secondary was not");

        _primary.RefuseConnections = true;
        SqlConnection.ClearAllPools();
        Assert.That(await context.Database.CanConnectAsync(), Is.False, "the secondary is up, the primary is not");
    }
}
