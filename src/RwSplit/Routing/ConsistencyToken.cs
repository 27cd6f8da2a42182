using System;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace RwSplit.Routing;

/// <summary>
/// An opaque, versioned, authenticated token that carries "reads must see writes up to here" from one connection,
/// request or service to another: export it after writing (<see cref="RwSplitConnection.GetConsistencyToken"/>), send
/// it along (for example in an HTTP header such as <c>X-Consistency-Token</c>), and apply it where the later read happens
/// (<see cref="RwSplitConnection.ApplyConsistencyToken"/>): that read then runs on a replica only if the replica has
/// replayed the writes, otherwise on the primary. A malformed, unknown-version, forged, altered or foreign token (signed
/// with a key the data source does not have, or from another database cluster) is refused with
/// <see cref="RwSplitError.InvalidConsistencyToken"/>, never silently ignored.
/// </summary>
/// <remarks>
/// Format: <c>rws2.</c> followed by base64url of 45 bytes: version (1), replica-set identity hash (8), position (8, -1
/// when the dialect has none), write time in Unix milliseconds (8), the signing key's id (4, the first bytes of the
/// key's SHA-256), and HMAC-SHA256 of all of that, truncated to 16 bytes. Keys: <see cref="RwSplitOptions.ConsistencyTokenKeys"/>.
/// The token holds no secret and no data: it is safe in headers and logs; without the key it cannot be made or changed.
/// </remarks>
public sealed class ConsistencyToken : IEquatable<ConsistencyToken>
{
    private const string Prefix = "rws2.";
    private const byte Version = 2;
    private const int SignedLength = 29; // version, identity, position, time, key id
    private const int MacLength = 16;
    private const int PayloadLength = SignedLength + MacLength;

    /// <summary>The longest text a token can be (prefix and unpadded base64url of the payload).</summary>
    internal const int MaxLength = 5 + ((PayloadLength * 4) + 2) / 3;

    private readonly byte[] _payload;
    private readonly string _text;

    /// <summary>A new token, signed with <paramref name="key"/>.</summary>
    internal ConsistencyToken(ulong identityHash, long position, DateTimeOffset writtenAt, ConsistencyTokenKeys.Key key)
    {
        IdentityHash = identityHash;
        Position = position;
        WrittenAt = DateTimeOffset.FromUnixTimeMilliseconds(writtenAt.ToUnixTimeMilliseconds());
        KeyId = key.Id;
        _payload = new byte[PayloadLength];
        var payload = _payload.AsSpan();
        payload[0] = Version;
        BinaryPrimitives.WriteUInt64BigEndian(payload[1..], IdentityHash);
        BinaryPrimitives.WriteInt64BigEndian(payload[9..], Position);
        BinaryPrimitives.WriteInt64BigEndian(payload[17..], WrittenAt.ToUnixTimeMilliseconds());
        BinaryPrimitives.WriteUInt32BigEndian(payload[25..], KeyId);
        key.Sign(payload[..SignedLength], payload[SignedLength..]);
        _text = Prefix + Convert.ToBase64String(_payload).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    private ConsistencyToken(byte[] payload, string text)
    {
        _payload = payload;
        _text = text;
        IdentityHash = BinaryPrimitives.ReadUInt64BigEndian(payload.AsSpan(1));
        Position = BinaryPrimitives.ReadInt64BigEndian(payload.AsSpan(9));
        WrittenAt = DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64BigEndian(payload.AsSpan(17)));
        KeyId = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(25));
    }

    /// <summary>A hash of the replica set's identity (PostgreSQL: the system identifier); 0 when unknown.</summary>
    public ulong IdentityHash { get; }

    /// <summary>The position reads must have reached (PostgreSQL: WAL bytes); -1 when only <see cref="WrittenAt"/> applies.</summary>
    public long Position { get; }

    /// <summary>When the write happened (UTC, millisecond precision): for dialects without positions, a replica qualifies once its data is newer.</summary>
    public DateTimeOffset WrittenAt { get; }

    /// <summary>The id of the key that signed the token: the first 4 bytes of the key's SHA-256 (names the key without revealing it).</summary>
    public uint KeyId { get; }

    /// <summary>Whether <paramref name="key"/> (one of <see cref="RwSplitOptions.ConsistencyTokenKeys"/>) signed this token as it is.</summary>
    /// <param name="key">The key's bytes.</param>
    /// <returns><see langword="false"/> when another key signed it, or it was forged or altered.</returns>
    public bool IsSignedBy(byte[] key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return IsSignedBy(new ConsistencyTokenKeys.Key(key));
    }

    /// <summary>Whether <paramref name="key"/> signed this token as it is.</summary>
    internal bool IsSignedBy(ConsistencyTokenKeys.Key key)
        => key.Id == KeyId && key.Verifies(_payload.AsSpan(0, SignedLength), _payload.AsSpan(SignedLength));

    /// <summary>
    /// Reads a token's fields. The signature is not checked here (that needs the data source's keys): a data source
    /// checks it when the token is applied, and refuses it then if it was forged or altered.
    /// </summary>
    /// <param name="token">The token text.</param>
    /// <exception cref="RwSplitException">The token is malformed or of an unknown version (<see cref="RwSplitError.InvalidConsistencyToken"/>).</exception>
    public static ConsistencyToken Parse(string token)
        => TryParse(token, out var parsed, out var error)
            ? parsed
            : throw new RwSplitException(RwSplitError.InvalidConsistencyToken, $"Invalid consistency token: {error}. Pass the string exactly as RwSplit produced it (GetConsistencyToken), or no token at all.");

    /// <summary>Reads a token's fields without throwing (the signature is checked when it is applied, see <see cref="Parse"/>).</summary>
    /// <param name="token">The token text.</param>
    /// <param name="parsed">The token, when well-formed.</param>
    /// <returns>Whether the text is a well-formed token.</returns>
    public static bool TryParse(string? token, [NotNullWhen(true)] out ConsistencyToken? parsed) => TryParse(token, out parsed, out _);

    private static bool TryParse(string? token, [NotNullWhen(true)] out ConsistencyToken? parsed, out string error)
    {
        parsed = null;
        if (string.IsNullOrWhiteSpace(token))
        {
            error = "it is empty";
            return false;
        }

        if (token.Length > MaxLength)
        {
            error = $"it is {token.Length} characters long, and a token has at most {MaxLength}";
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
            error = version == "rws1."
                ? "version 'rws1.' is an unauthenticated token of an earlier RwSplit version, no longer accepted: export a new one"
                : $"version '{version}' is not supported by this RwSplit version (it reads 'rws2.')";
            return false;
        }

        var bytes = new byte[PayloadLength + 3];
        if (!TryDecodeBase64Url(token.AsSpan(Prefix.Length), bytes, out var written) || written != PayloadLength)
        {
            error = "its payload is not valid (wrong length or characters): it was truncated or altered";
            return false;
        }

        if (bytes[0] != Version)
        {
            error = $"payload version {bytes[0]} is not supported";
            return false;
        }

        // Fields no token of RwSplit carries: refused here, before anything reads them (a time outside DateTimeOffset's
        // range would throw ArgumentOutOfRangeException, not the documented error).
        var milliseconds = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(17));
        if (milliseconds < DateTimeOffset.MinValue.ToUnixTimeMilliseconds() || milliseconds > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds() || BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(9)) < -1)
        {
            error = "its fields are out of range: it was altered";
            return false;
        }

        parsed = new ConsistencyToken(bytes[..PayloadLength], token);
        error = "";
        return true;
    }

    /// <summary>The token text.</summary>
    public override string ToString() => _text;

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

    private static bool TryDecodeBase64Url(ReadOnlySpan<char> text, Span<byte> destination, out int written)
    {
        written = 0;
        if (text.Length > MaxLength)
            return false;
        Span<char> standard = stackalloc char[MaxLength + 4];
        var length = 0;
        foreach (var c in text)
            standard[length++] = c switch { '-' => '+', '_' => '/', _ => c };
        while (length % 4 != 0)
            standard[length++] = '=';
        return Convert.TryFromBase64Chars(standard[..length], destination, out written);
    }
}
