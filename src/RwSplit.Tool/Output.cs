using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace RwSplit.Tool;

/// <summary>
/// Writes a command's result as a table (Spectre.Console) or as JSON (stable, documented in docs/tool.md), shows a
/// spinner on long operations (table mode on a terminal only), and writes errors to stderr with any password removed.
/// </summary>
internal sealed partial class Output
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    private readonly IAnsiConsole _console;

    public Output(bool json)
    {
        IsJson = json;
        _console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        if (Console.IsOutputRedirected)
            _console.Profile.Width = 200; // piped or captured: no terminal width to fit, keep rows on one line
    }

    public bool IsJson { get; }

    /// <summary>Runs <paramref name="work"/> under a spinner with <paramref name="message"/> when a person watches (table mode, a terminal).</summary>
    public async Task<T> ProgressAsync<T>(string message, Func<Task<T>> work)
    {
        if (IsJson || Console.IsOutputRedirected || !_console.Profile.Capabilities.Interactive)
            return await work();
        return await _console.Status().StartAsync(message, _ => work());
    }

    public void WriteJson<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Json));

    public void Write(IRenderable renderable) => _console.Write(renderable);

    public void Line(string text) => _console.Write(new Text(text + Environment.NewLine));

    /// <summary>A table whose cells are plain text (never markup: values cannot inject styles).</summary>
    public static Table Table(params string[] columns)
    {
        var table = new Table().RoundedBorder();
        foreach (var column in columns)
            table.AddColumn(new TableColumn(new Text(column)));
        return table;
    }

    /// <summary>A two-column table of names and values, without headers.</summary>
    public static Table Properties() => Table("", "").HideHeaders();

    public static void Row(Table table, params string?[] cells) => table.AddRow(cells.Select(c => (IRenderable)new Text(c ?? "-")).ToArray());

    /// <summary>Writes an error to stderr: connection-string passwords removed, whatever produced the message.</summary>
    public static void Error(string message) => Console.Error.WriteLine("error: " + Redact(message));

    public static string Redact(string text) => PasswordPattern().Replace(text, "$1=***");

    public static string Seconds(TimeSpan? value) => value is { } v ? v.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture) + " s" : "-";

    public static string Age(TimeSpan value)
        => value.TotalHours >= 1 ? $"{(int)value.TotalHours}h{value.Minutes:00}m"
            : value.TotalMinutes >= 1 ? $"{(int)value.TotalMinutes}m{value.Seconds:00}s"
            : value.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";

    public static double Round(double value, int digits = 3) => Math.Round(value, digits, MidpointRounding.AwayFromZero);

    [GeneratedRegex(@"(?i)\b(password|pwd)\s*=\s*(""[^""]*""|'[^']*'|[^;]*)")]
    private static partial Regex PasswordPattern();
}
