using System;
using System.Diagnostics;
using System.Net;
using System.Collections.Generic;
using System.Linq;
using System.Net.Http;
using System.Net.Http.Json;
using System.Text.Json;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.PgCluster;

namespace RwSplit.OperationsTests.WebApi;

/// <summary>
/// One instance of the sample with its console exporter on, over a primary and one replica of its own (ports
/// 25494–25495): <c>/health</c> as a load balancer sees it (200 Healthy, 503 Unhealthy once the primary is stopped, 200
/// again once it is back), and the spans it writes to the console.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class OneInstanceTests
{
    private LocalPgCluster? _cluster;
    private WebApiInstance? _instance;
    private HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await SampleServers.StartAsync(basePort: 25494, replicas: 1);
        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var environment = SampleServers.Environment(_cluster, SampleServers.NewTokenKey());
        environment["Telemetry__ConsoleExporter"] = "true";
        _instance = await WebApiInstance.StartAsync("instance", environment, TimeSpan.FromSeconds(60));
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

    [Test]
    public async Task A_request_s_spans_go_to_the_console_with_RwSplit_s_span_parenting_Npgsql_s()
    {
        var text = $"traced {Guid.NewGuid():N}";
        using (var response = await _http.PostAsJsonAsync(new Uri(_instance!.BaseAddress, "/notes"), new { text }))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created));

        // The console exporter writes each span when it ends: the server span ends last, after the response.
        IReadOnlyList<ConsoleSpan> spans = [];
        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < TimeSpan.FromSeconds(10))
        {
            spans = ConsoleSpan.Parse(_instance.Output);
            if (spans.Any(s => s.Source == "Microsoft.AspNetCore" && s.Name == "POST /notes"))
                break;
            await Task.Delay(100);
        }

        var server = spans.LastOrDefault(s => s.Source == "Microsoft.AspNetCore" && s.Name == "POST /notes");
        Assert.That(server, Is.Not.Null, _instance.Output);
        var inTrace = spans.Where(s => s.TraceId == server!.TraceId).ToList();
        var insert = inTrace.SingleOrDefault(s => s.Source == "Npgsql" && s.QueryText?.StartsWith("INSERT INTO notes", StringComparison.Ordinal) == true);
        Assert.That(insert, Is.Not.Null, () => $"Npgsql's client span of the INSERT is exported: {string.Join(Environment.NewLine, inTrace)}");
        var parent = inTrace.SingleOrDefault(s => s.SpanId == insert!.ParentSpanId);
        Assert.That(parent?.Source, Is.EqualTo("RwSplit"), "RwSplit's span parents Npgsql's");
        Assert.That(parent!.ParentSpanId, Is.EqualTo(server!.SpanId), "and is the request's child");
        Assert.That(_instance.Output, Does.Not.Contain(text), "no SQL literal or parameter value in telemetry or logs");
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
