namespace RwSplit.Tool;

/// <summary>The tool's exit codes (documented in docs/tool.md).</summary>
internal static class ExitCodes
{
    public const int Healthy = 0;
    public const int Degraded = 1;
    public const int Unhealthy = 2;
    public const int UsageOrConnectionError = 3;
}
