using System;
using System.Text;

namespace RwSplit.Diagnostics;

/// <summary>
/// The shape of a statement, safe to log: string literals (<c>'…'</c>, <c>E'…'</c>, <c>N'…'</c>, dollar-quoted bodies),
/// numbers and comments become <c>?</c> (comments: a space), identifiers and keywords stay, and the result is cut to
/// <see cref="MaxLength"/> characters. Unterminated literals and comments are masked to the end. Quoted identifiers
/// (<c>"x"</c>, <c>[x]</c>) stay: they name objects, not values. Linear in the text, never throws.
/// </summary>
internal static class SqlRedaction
{
    public const int MaxLength = 200;

    public static string Shape(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return string.Empty;
        var output = new StringBuilder(Math.Min(text.Length, MaxLength) + 1);
        var i = 0;
        while (i < text.Length && output.Length < MaxLength)
        {
            var c = text[i];
            var next = i + 1 < text.Length ? text[i + 1] : '\0';
            if (c == '\'')
            {
                i = SkipQuoted(text, i + 1, '\'');
                output.Append('?');
            }
            else if ((c is 'E' or 'e' or 'N' or 'n' or 'B' or 'b' or 'X' or 'x' or 'U' or 'u') && next == '\'' && !PrecededByWordChar(text, i))
            {
                i = SkipQuoted(text, i + 2, '\'', backslashEscapes: c is 'E' or 'e');
                output.Append('?');
            }
            else if (c == '$' && DollarTag(text, i) is { } tag)
            {
                var end = text.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                i = end < 0 ? text.Length : end + tag.Length;
                output.Append('?');
            }
            else if (c == '-' && next == '-')
            {
                var end = text.IndexOf('\n', i);
                i = end < 0 ? text.Length : end;
                output.Append(' ');
            }
            else if (c == '/' && next == '*')
            {
                i = SkipBlockComment(text, i + 2);
                output.Append(' ');
            }
            else if (char.IsAsciiDigit(c) && !PrecededByWordChar(text, i))
            {
                while (i < text.Length && (char.IsAsciiLetterOrDigit(text[i]) || text[i] is '.' or '_'))
                    i++;
                output.Append('?');
            }
            else if (c == '"')
            {
                var end = SkipQuoted(text, i + 1, '"');
                output.Append(text, i, Math.Min(end - i, MaxLength - output.Length));
                i = end;
            }
            else
            {
                output.Append(char.IsSurrogate(c) || char.IsControl(c) ? ' ' : c);
                i++;
            }
        }

        if (i < text.Length)
            output.Append('…');
        return output.ToString();
    }

    /// <summary>The index after the closing <paramref name="quote"/> (a doubled quote is part of the text), or the end (never past it).</summary>
    private static int SkipQuoted(string text, int i, char quote, bool backslashEscapes = false)
    {
        while (i < text.Length)
        {
            if (backslashEscapes && text[i] == '\\')
            {
                i += 2; // PostgreSQL E'...': a backslash escapes the next character, a quote included
                continue;
            }

            if (text[i] == quote)
            {
                if (i + 1 < text.Length && text[i + 1] == quote)
                {
                    i += 2;
                    continue;
                }

                return i + 1;
            }

            i++;
        }

        return text.Length;
    }

    /// <summary>PostgreSQL block comments nest.</summary>
    private static int SkipBlockComment(string text, int i)
    {
        var depth = 1;
        while (i < text.Length && depth > 0)
        {
            if (text[i] == '*' && i + 1 < text.Length && text[i + 1] == '/')
            {
                depth--;
                i += 2;
            }
            else if (text[i] == '/' && i + 1 < text.Length && text[i + 1] == '*')
            {
                depth++;
                i += 2;
            }
            else
            {
                i++;
            }
        }

        return i;
    }

    /// <summary>A dollar-quote opening tag at <paramref name="i"/> (<c>$$</c>, <c>$tag$</c>), or null (a parameter such as <c>$1</c>).</summary>
    private static string? DollarTag(string text, int i)
    {
        if (PrecededByWordChar(text, i))
            return null;
        var j = i + 1;
        while (j < text.Length && (char.IsAsciiLetterOrDigit(text[j]) || text[j] == '_'))
        {
            if (j == i + 1 && char.IsAsciiDigit(text[j]))
                return null;
            j++;
        }

        return j < text.Length && text[j] == '$' ? text.Substring(i, j - i + 1) : null;
    }

    private static bool PrecededByWordChar(string text, int i)
        => i > 0 && (char.IsLetterOrDigit(text[i - 1]) || text[i - 1] is '_' or '$' or '@' or '#');
}
