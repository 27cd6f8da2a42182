using System;
using System.Text;

namespace RwSplit.Tds;

/// <summary>
/// A client sent bytes the server cannot read as MS-TDS. The message names the structure, the reason, the offset and
/// the offending bytes in hex, so that a protocol mistake is diagnosable from the test output alone.
/// </summary>
public sealed class TdsProtocolException : Exception
{
    private const int MaxDumpedBytes = 1024;

    public TdsProtocolException()
    {
        Bytes = [];
    }

    public TdsProtocolException(string message)
        : base(message)
    {
        Bytes = [];
    }

    public TdsProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
        Bytes = [];
    }

    public TdsProtocolException(string reason, ReadOnlySpan<byte> bytes, int offset)
        : base($"{reason} (at offset {offset} of {bytes.Length} bytes). Bytes: {Hex(bytes)}")
    {
        Reason = reason;
        Bytes = bytes.ToArray();
        Offset = offset;
    }

    /// <summary>What was wrong, without the dump.</summary>
    public string? Reason { get; }

    /// <summary>The bytes of the message (or packet) that could not be read.</summary>
    public byte[] Bytes { get; }

    /// <summary>Where reading stopped.</summary>
    public int Offset { get; }

    /// <summary>Space-separated lower-case hex, at most 1024 bytes (then "… (n more)").</summary>
    public static string Hex(ReadOnlySpan<byte> bytes)
    {
        var shown = Math.Min(bytes.Length, MaxDumpedBytes);
        var text = new StringBuilder(shown * 3 + 16);
        for (var i = 0; i < shown; i++)
        {
            if (i > 0)
                text.Append(' ');
            text.Append(bytes[i].ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        }

        if (bytes.Length > shown)
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $" … ({bytes.Length - shown} more)");
        return text.ToString();
    }
}
