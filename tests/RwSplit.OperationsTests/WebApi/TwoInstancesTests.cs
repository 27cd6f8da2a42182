using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Http.Json;
using System.Text.Json;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;

namespace RwSplit.OperationsTests.WebApi;

/// <summary>
/// The web sample started twice, as two processes sharing one token key, over one primary and two replicas whose replay
/// is delayed by <see cref="ReplayDelay"/> (ports 25491–25493), driven over real HTTP on loopback: a write through
/// instance A and a read through instance B with A's token sees the write; without the token the same read meets a
/// replica that has not replayed it.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class TwoInstancesTests
{
    private const string TokenHeader = "X-Consistency-Token";
    private const string RouteHeader = "X-RwSplit-Route";
    private static readonly TimeSpan ReplayDelay = TimeSpan.FromSeconds(3);

    private LocalPgCluster? _cluster;
    private WebApiInstance? _a;
    private WebApiInstance? _b;
    private WebApiInstance? _c;
    private Dictionary<string, string> _environment = null!;
    private HttpClient _http = null!;

    private LocalPgCluster Cluster => _cluster ?? throw new InvalidOperationException("The PostgreSQL cluster was not started.");

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await SampleServers.StartAsync(basePort: 25491, replicas: 2);
        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        _environment = SampleServers.Environment(Cluster, SampleServers.NewTokenKey());
        // The lag PostgreSQL reports while a replica is behind counts from the last transaction it replayed, which may
        // be long before a test's write: keep the delayed replicas in service.
        _environment["RwSplit__MaxReplicaLag"] = "00:10:00";
        // One after the other: each creates the schema at startup (idempotent, serialized by an advisory lock anyway).
        _a = await WebApiInstance.StartAsync("instance A", _environment, TimeSpan.FromSeconds(60));
        _b = await WebApiInstance.StartAsync("instance B", _environment, TimeSpan.FromSeconds(60));
        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30)); // the notes table is on the replicas
        foreach (var replica in Cluster.Replicas)
            await replica.SetConfigAsync("recovery_min_apply_delay", $"{ReplayDelay.TotalSeconds:0}s");
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _a?.Dispose();
        _b?.Dispose();
        _c?.Dispose();
        _http?.Dispose();
        if (_cluster is not null)
        {
            try
            {
                foreach (var replica in _cluster.Replicas)
                    await replica.ResetConfigAsync("recovery_min_apply_delay");
            }
            finally
            {
                await _cluster.DisposeAsync();
            }
        }
    }

    private WebApiInstance A => _a!;

    private WebApiInstance B => _b!;

    [Test]
    public async Task A_write_through_instance_A_is_read_through_instance_B_with_its_token()
    {
        var (id, token) = await WriteAsync(A, "written through A");
        Assert.That(token, Does.StartWith("rws2."), "A returns the session's token after the write");

        using var read = await GetAsync(B, id, token);
        Assert.That(read.StatusCode, Is.EqualTo(HttpStatusCode.OK), () => $"B with A's token must see the write ({Route(read)}){Environment.NewLine}{B.Output}");
        var note = await read.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(note.GetProperty("text").GetString(), Is.EqualTo("written through A"));
        Assert.That(Route(read), Does.StartWith("Primary").Or.Contain("CaughtUpReplica"), "served where the write is: the primary, or a replica that has replayed it");
        Assert.That(read.Headers.TryGetValues(TokenHeader, out var echoed) ? echoed.Single() : null, Is.EqualTo(token), "B hands the token on (its session wrote nothing newer)");
    }

    [Test]
    public async Task Without_the_token_instance_B_reads_a_replica_that_has_not_replayed_the_write()
    {
        var (id, _) = await WriteAsync(A, "not yet on the replicas");

        // The control, straight on the servers: neither replica has the row yet, the primary has.
        foreach (var replica in Cluster.ReplicaConnectionStrings)
            Assert.That(await CountAsync(replica, id), Is.Zero, "the replicas' replay is delayed");
        Assert.That(await CountAsync(Cluster.PrimaryConnectionString, id), Is.EqualTo(1));

        using var read = await GetAsync(B, id, token: null);
        Assert.That(read.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), () => $"without the token B reads a lagging replica ({Route(read)})");
        Assert.That(Route(read), Does.StartWith("Replica"));
        Assert.That(read.Headers.Contains(TokenHeader), Is.False, "a session that neither wrote nor received a token has none");
    }

    [Test]
    public async Task A_read_through_A_after_its_write_in_another_request_needs_the_token_too()
    {
        // Requests are sessions: A's own next request is no different from B's.
        var (id, token) = await WriteAsync(A, "A's own next request");
        using (var without = await GetAsync(A, id, token: null))
            Assert.That(without.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), () => Route(without));
        using var with = await GetAsync(A, id, token);
        Assert.That(with.StatusCode, Is.EqualTo(HttpStatusCode.OK), () => Route(with));
    }

    [Test]
    public async Task An_altered_token_is_refused_with_400()
    {
        var (id, token) = await WriteAsync(A, "altered token");
        var last = token[^2] == 'A' ? 'B' : 'A'; // a signature character: the MAC no longer matches
        var altered = token[..^2] + last + token[^1];
        using var refused = await GetAsync(B, id, altered);
        Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var problem = await refused.Content.ReadAsStringAsync();
        Assert.That(problem, Does.Contain(TokenHeader).And.Not.Contain(altered), "a problem document naming the header, never echoing the token");
        Assert.That(refused.Headers.Contains(TokenHeader), Is.False);
    }

    [Test]
    public async Task A_token_of_an_instance_with_another_key_is_refused()
    {
        // Instance C has its own key (as every instance would without RwSplit:TokenKeys): B cannot verify its tokens.
        _c = await WebApiInstance.StartAsync("instance C", new Dictionary<string, string>(_environment) { ["RwSplit__TokenKeys__0"] = SampleServers.NewTokenKey() }, TimeSpan.FromSeconds(60));
        try
        {
            var (id, token) = await WriteAsync(_c, "signed with C's key");
            using var refused = await GetAsync(B, id, token);
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), () => Route(refused));
            using var accepted = await GetAsync(_c, id, token);
            Assert.That(accepted.StatusCode, Is.EqualTo(HttpStatusCode.OK), "C itself accepts it");
        }
        finally
        {
            _c.Dispose();
            _c = null;
        }
    }

    [Test]
    public async Task Health_answers_200_with_the_status_on_both_instances()
    {
        foreach (var instance in new[] { A, B })
        {
            using var response = await _http.GetAsync(new Uri(instance.BaseAddress, "/health"));
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
            using var json = JsonDocument.Parse(body);
            Assert.That(json.RootElement.GetProperty("status").GetString(), Is.EqualTo("Healthy").Or.EqualTo("Degraded"), body);
            Assert.That(json.RootElement.GetProperty("checks").EnumerateObject().Select(c => c.Name), Is.Not.Empty, body);
            Assert.That(body, Does.Not.Contain("Host=").And.Not.Contain("Username").And.Not.Contain("Password"), "no connection strings");
        }
    }

    private async Task<(long Id, string Token)> WriteAsync(WebApiInstance instance, string text)
    {
        using var response = await _http.PostAsJsonAsync(new Uri(instance.BaseAddress, "/notes"), new { text });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), () => $"{response.Content.ReadAsStringAsync().Result}{Environment.NewLine}{instance.Output}");
        Assert.That(Route(response), Does.StartWith("Primary"), "a write runs on the primary");
        var note = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(response.Headers.TryGetValues(TokenHeader, out var tokens), Is.True, "a write returns a token");
        return (note.GetProperty("id").GetInt64(), tokens!.Single());
    }

    private async Task<HttpResponseMessage> GetAsync(WebApiInstance instance, long id, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(instance.BaseAddress, $"/notes/{id}"));
        if (token is not null)
            request.Headers.Add(TokenHeader, token);
        return await _http.SendAsync(request);
    }

    private static string Route(HttpResponseMessage response)
        => response.Headers.TryGetValues(RouteHeader, out var values) ? string.Join(",", values) : "no route header";

    private static async Task<long> CountAsync(string connectionString, long id)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM notes WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
