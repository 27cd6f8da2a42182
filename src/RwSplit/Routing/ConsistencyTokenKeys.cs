using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Security.Cryptography;

namespace RwSplit.Routing;

/// <summary>
/// The keys a data source signs and checks consistency tokens with (<see cref="RwSplitOptions.ConsistencyTokenKeys"/>):
/// the first signs, every one verifies, so a key is rotated by putting the new one first and dropping the old one once
/// the tokens it signed are no longer in flight. Without configured keys, one random key of the data source's own:
/// its tokens are then good only within that data source (one process).
/// </summary>
internal sealed class ConsistencyTokenKeys
{
    /// <summary>The shortest key accepted (HMAC-SHA256; 32 bytes recommended).</summary>
    public const int MinimumKeyLength = 16;

    private readonly Key[] _keys;

    private ConsistencyTokenKeys(Key[] keys) => _keys = keys;

    /// <summary>Whether the keys were configured (shared with other data sources or services) rather than generated.</summary>
    public bool Configured { get; private init; }

    public static ConsistencyTokenKeys From(IList<byte[]> configured)
    {
        if (configured.Count == 0)
            return new ConsistencyTokenKeys([new Key(RandomNumberGenerator.GetBytes(32))]);
        var keys = new Key[configured.Count];
        for (var i = 0; i < keys.Length; i++)
            keys[i] = new Key(configured[i].AsSpan().ToArray()); // copied: a later change to the option's array changes nothing
        return new ConsistencyTokenKeys(keys) { Configured = true };
    }

    /// <summary>The id of <paramref name="key"/>: the first 4 bytes of its SHA-256 (names the key in a token without revealing it).</summary>
    public static uint IdOf(ReadOnlySpan<byte> key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(key, hash);
        return BinaryPrimitives.ReadUInt32BigEndian(hash);
    }

    /// <summary>The key new tokens are signed with.</summary>
    public Key Signing => _keys[0];

    /// <summary>The key whose id the token names, if this data source has it.</summary>
    public Key? Find(uint id)
    {
        foreach (var key in _keys)
        {
            if (key.Id == id)
                return key;
        }

        return null;
    }

    /// <summary>One key and its id.</summary>
    internal sealed class Key
    {
        private readonly byte[] _secret;

        public Key(byte[] secret)
        {
            _secret = secret;
            Id = IdOf(secret);
        }

        public uint Id { get; }

        /// <summary>The token's MAC: HMAC-SHA256 of the signed bytes, truncated to <paramref name="mac"/>'s length.</summary>
        public void Sign(ReadOnlySpan<byte> signed, Span<byte> mac)
        {
            Span<byte> full = stackalloc byte[32];
            HMACSHA256.HashData(_secret, signed, full);
            full[..mac.Length].CopyTo(mac);
        }

        /// <summary>Whether <paramref name="mac"/> is this key's MAC of <paramref name="signed"/> (compared in constant time).</summary>
        public bool Verifies(ReadOnlySpan<byte> signed, ReadOnlySpan<byte> mac)
        {
            Span<byte> expected = stackalloc byte[mac.Length];
            Sign(signed, expected);
            return CryptographicOperations.FixedTimeEquals(expected, mac);
        }
    }
}
