// RwSplit ASP.NET Core sample: a minimal notes API over PostgreSQL (a primary and its streaming replicas) through one
// RwSplitDataSource from DI. Writes go to the primary, reads to replicas; the X-Consistency-Token header carries a
// session's writes to its next requests, on this instance or another one configured with the same token keys, so they
// read their own writes however far the replicas lag. /health reports the topology; traces and metrics go to the console.
// Configuration (appsettings.json, environment variables such as RwSplit__Primary, RwSplit__Replicas__0,
// RwSplit__TokenKeys__0): see README.md.
using System;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using RwSplit;
using RwSplit.PostgreSql;
using RwSplit.WebApi;

var builder = WebApplication.CreateBuilder(args);

var section = builder.Configuration.GetSection("RwSplit");
var tokenKeys = section.GetSection("TokenKeys").Get<string[]>() ?? [];
builder.Services.AddReadWriteSplit(o =>
{
    o.UseNpgsql();
    section.Bind(o); // Primary, Replicas, MaxReplicaLag, ReadYourWritesTimeout, Name, ...
    foreach (var key in tokenKeys)
        o.ConsistencyTokenKeys.Add(Convert.FromBase64String(key)); // the first signs; all verify (rotation)
});
builder.Services.AddScoped<RequestSession>();
builder.Services.AddProblemDetails();

// Reads the topology monitor's last snapshot, no query per probe: Unhealthy without a writable primary or with a stale
// monitor, Degraded for ejected or lagging replicas, fallback reads, a recent failover or unresolved prepared branches.
builder.Services.AddHealthChecks().AddRwSplit();

if (builder.Configuration.GetValue("Telemetry:Enabled", true))
{
    var console = builder.Configuration.GetValue("Telemetry:ConsoleExporter", true);
    builder.Services.AddOpenTelemetry()
        .ConfigureResource(r => r.AddService(builder.Configuration["Telemetry:ServiceName"] ?? "rwsplit-webapi"))
        .WithTracing(t =>
        {
            t.AddAspNetCoreInstrumentation().AddRwSplitInstrumentation().AddSource("Npgsql"); // Npgsql's client spans under RwSplit's
            if (console)
                t.AddConsoleExporter();
        })
        .WithMetrics(m =>
        {
            m.AddAspNetCoreInstrumentation().AddRwSplitInstrumentation().AddMeter("Npgsql");
            if (console)
                m.AddConsoleExporter();
        });
}

var app = builder.Build();
var dataSource = app.Services.GetRequiredService<RwSplitDataSource>();
if (tokenKeys.Length == 0)
    StartupLog.NoSharedTokenKey(app.Logger);

await Notes.CreateSchemaAsync(dataSource, app.Lifetime.ApplicationStopping);

app.UseExceptionHandler();
app.UseMiddleware<ConsistencyTokenMiddleware>();
app.MapNotes();
app.MapHealthChecks("/health", new() { ResponseWriter = HealthResponse.WriteAsync });
await app.RunAsync();
