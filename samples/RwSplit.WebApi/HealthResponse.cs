using System.Linq;
using System.Text.Json;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace RwSplit.WebApi;

/// <summary>
/// Writes a health report as JSON: the overall status, and per check its status, description, duration and data
/// (the checks put no secrets there: roles, availability, lag, error kinds). The status code is the middleware's:
/// 200 for Healthy and Degraded, 503 for Unhealthy.
/// </summary>
internal static class HealthResponse
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        var body = new
        {
            status = report.Status.ToString(),
            duration = report.TotalDuration.TotalSeconds,
            checks = report.Entries.ToDictionary(
                e => e.Key,
                e => new { status = e.Value.Status.ToString(), description = e.Value.Description, duration = e.Value.Duration.TotalSeconds, data = e.Value.Data }),
        };
        return context.Response.WriteAsJsonAsync(body, Json, context.RequestAborted);
    }
}
