using System;
using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Text.Json;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.PgCluster;

namespace RwSplit.OperationsTests.WebApi;

/// <summary>
/// The sample's <c>/health</c> as a load balancer sees it, over a primary and one replica of its own (ports
/// 25494–25495): 200 Healthy, 503 Unhealthy once the primary is stopped, 200 again once it is back.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class HealthTransitionsTests
{
    private LocalPgCluster? _cluster;
    private WebApiInstance? _instance;
    private HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await SampleServers.StartAsync(basePort: 25494, replicas: 1);
        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        _instance = await WebApiInstance.StartAsync("instance", SampleServers.Environment(_cluster, SampleServers.NewTokenKey()), TimeSpan.FromSeconds(60));
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _instance?.Dispose();
        _http?.Dispose();
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task Health_is_200_then_503_without_the_primary_then_200_again()
    {
        var (code, status, body) = await WaitForHealthAsync(HttpStatusCode.OK, "Healthy");
        Assert.That((code, status), Is.EqualTo((HttpStatusCode.OK, "Healthy")), body);

        await _cluster!.Primary.StopAsync();
        (code, status, body) = await WaitForHealthAsync(HttpStatusCode.ServiceUnavailable, "Unhealthy");
        Assert.That((code, status), Is.EqualTo((HttpStatusCode.ServiceUnavailable, "Unhealthy")), body);

        await _cluster.Primary.StartAsync();
        (code, status, body) = await WaitForHealthAsync(HttpStatusCode.OK, "Healthy");
        Assert.That((code, status), Is.EqualTo((HttpStatusCode.OK, "Healthy")), body);
    }

    // The monitor probes every second: poll until the expected answer, for at most 30 s, and return the last one.
    private async Task<(HttpStatusCode Code, string? Status, string Body)> WaitForHealthAsync(HttpStatusCode code, string status)
    {
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            using var response = await _http.GetAsync(new Uri(_instance!.BaseAddress, "/health"));
            var body = await response.Content.ReadAsStringAsync();
            using var json = JsonDocument.Parse(body);
            var current = json.RootElement.GetProperty("status").GetString();
            if ((response.StatusCode == code && current == status) || stopwatch.Elapsed > TimeSpan.FromSeconds(30))
                return (response.StatusCode, current, body);
            await Task.Delay(200);
        }
    }
}
