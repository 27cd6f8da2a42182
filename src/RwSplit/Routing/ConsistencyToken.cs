using System;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace RwSplit.Routing;

/// <summary>
/// An opaque, versioned token that carries "reads must see writes up to here" from one connection, request or service to
/// another: export it after writing (<see cref="RwSplitConnection.GetConsistencyToken"/>), send it along (for example
/// in an HTTP header such as <c>X-Consistency-Token</c>), and apply it where the later read happens
/// (<see cref="RwSplitConnection.ApplyConsistencyToken"/>): that read then runs on a replica only if the replica has
/// replayed the writes, otherwise on the primary. A malformed, unknown-version or foreign token (from another database
/// cluster) is refused with <see cref="RwSplitError.InvalidConsistencyToken"/>, never silently ignored.
/// </summary>
/// <remarks>
/// Format: <c>rws1.</c> followed by base64url of 29 bytes: version (1), replica-set identity hash (8), position (8,
/// -1 when the dialect has none), write time in Unix milliseconds (8), FNV-1a checksum of the preceding bytes (4).
/// The token holds no secret and no data: it is safe in headers and logs.
/// </remarks>
public sealed class ConsistencyToken : IEquatable<ConsistencyToken>
{
    private const string Prefix = "rws1.";
    private const byte Version = 1;
    private const int PayloadLength = 29;

    internal ConsistencyToken(ulong identityHash, long position, DateTimeOffset writtenAt)
    {
        IdentityHash = identityHash;
        Position = position;
        WrittenAt = DateTimeOffset.FromUnixTimeMilliseconds(writtenAt.ToUnixTimeMilliseconds());
    }

    /// <summary>A hash of the replica set's identity (PostgreSQL: the system identifier); 0 when unknown.</summary>
    public ulong IdentityHash { get; }

    /// <summary>The position reads must have reached (PostgreSQL: WAL bytes); -1 when only <see cref="WrittenAt"/> applies.</summary>
    public long Position { get; }

    /// <summary>When the write happened (UTC, millisecond precision): for dialects without positions, a replica qualifies once its lag is smaller than the time since.</summary>
    public DateTimeOffset WrittenAt { get; }

    /// <summary>Parses a token.</summary>
    /// <param name="token">The token text.</param>
    /// <exception cref="RwSplitException">The token is malformed or of an unknown version (<see cref="RwSplitError.InvalidConsistencyToken"/>).</exception>
    public static ConsistencyToken Parse(string token)
        => TryParse(token, out var parsed, out var error)
            ? parsed
            : throw new RwSplitException(RwSplitError.InvalidConsistencyToken, $"Invalid consistency token: {error}. Pass the string exactly as RwSplit produced it (GetConsistencyToken), or no token at all.");

    /// <summary>Parses a token without throwing.</summary>
    /// <param name="token">The token text.</param>
    /// <param name="parsed">The token, when valid.</param>
    /// <returns>Whether the text is a valid token.</returns>
    public static bool TryParse(string? token, [NotNullWhen(true)] out ConsistencyToken? parsed) => TryParse(token, out parsed, out _);

    private static bool TryParse(string? token, [NotNullWhen(true)] out ConsistencyToken? parsed, out string error)
    {
        parsed = null;
        if (string.IsNullOrWhiteSpace(token))
        {
            error = "it is empty";
            return false;
        }

        if (!token.StartsWith("rws", StringComparison.Ordinal) || token.Length < Prefix.Length)
        {
            error = "it is not an RwSplit consistency token (no 'rws' prefix)";
            return false;
        }

        if (!token.StartsWith(Prefix, StringComparison.Ordinal))
        {
            var dot = token.IndexOf('.', StringComparison.Ordinal);
            var version = dot > 0 && dot <= 8 ? token[..(dot + 1)] : token[..Math.Min(5, token.Length)];
            error = $"version '{version}' is not supported by this RwSplit version (it reads 'rws1.')";
            return false;
        }

        Span<byte> bytes = stackalloc byte[PayloadLength + 3];
        if (!TryDecodeBase64Url(token.AsSpan(Prefix.Length), bytes, out var written) || written != PayloadLength)
        {
            error = "its payload is not valid (wrong length or characters): it was truncated or altered";
            return false;
        }

        var payload = bytes[..PayloadLength];
        if (BinaryPrimitives.ReadUInt32BigEndian(payload[25..]) != Fnv1a(payload[..25]))
        {
            error = "its checksum does not match: it was altered";
            return false;
        }

        if (payload[0] != Version)
        {
            error = $"payload version {payload[0]} is not supported";
            return false;
        }

        parsed = new ConsistencyToken(
            BinaryPrimitives.ReadUInt64BigEndian(payload[1..]),
            BinaryPrimitives.ReadInt64BigEndian(payload[9..]),
            DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64BigEndian(payload[17..])));
        error = "";
        return true;
    }

    /// <summary>The token text.</summary>
    public override string ToString()
    {
        Span<byte> payload = stackalloc byte[PayloadLength];
        payload[0] = Version;
        BinaryPrimitives.WriteUInt64BigEndian(payload[1..], IdentityHash);
        BinaryPrimitives.WriteInt64BigEndian(payload[9..], Position);
        BinaryPrimitives.WriteInt64BigEndian(payload[17..], WrittenAt.ToUnixTimeMilliseconds());
        BinaryPrimitives.WriteUInt32BigEndian(payload[25..], Fnv1a(payload[..25]));
        return Prefix + Convert.ToBase64String(payload).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>The later of two tokens of the same replica set (the one whose reads see more).</summary>
    /// <param name="a">A token.</param>
    /// <param name="b">Another token.</param>
    public static ConsistencyToken Max(ConsistencyToken a, ConsistencyToken b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return a.Position > b.Position || (a.Position == b.Position && a.WrittenAt >= b.WrittenAt) ? a : b;
    }

    /// <inheritdoc />
    public bool Equals(ConsistencyToken? other)
        => other is not null && IdentityHash == other.IdentityHash && Position == other.Position && WrittenAt == other.WrittenAt;

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as ConsistencyToken);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(IdentityHash, Position, WrittenAt);

    /// <summary>A stable 64-bit hash of a replica-set identity string (FNV-1a), 0 for none.</summary>
    internal static ulong HashIdentity(string? identity)
    {
        if (string.IsNullOrEmpty(identity))
            return 0;
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(identity))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }

        return hash == 0 ? 1 : hash;
    }

    private static uint Fnv1a(ReadOnlySpan<byte> data)
    {
        var hash = 2166136261U;
        foreach (var b in data)
        {
            hash ^= b;
            hash *= 16777619U;
        }

        return hash;
    }

    private static bool TryDecodeBase64Url(ReadOnlySpan<char> text, Span<byte> destination, out int written)
    {
        written = 0;
        if (text.Length > 64)
            return false;
        Span<char> standard = stackalloc char[72];
        var length = 0;
        foreach (var c in text)
            standard[length++] = c switch { '-' => '+', '_' => '/', _ => c };
        while (length % 4 != 0)
            standard[length++] = '=';
        return Convert.TryFromBase64Chars(standard[..length], destination, out written);
    }
}
