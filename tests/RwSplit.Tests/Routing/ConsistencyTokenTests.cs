using System;
using System.Diagnostics;
using System.Linq;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests.Routing;

/// <summary>
/// Consistency tokens: their format, and the data source's check of their signature (forged, altered, oversized,
/// foreign-key and retired-key tokens refused; key rotation).
/// </summary>
public sealed class ConsistencyTokenTests
{
    private static readonly DateTimeOffset Written = new(2026, 11, 26, 12, 0, 0, 123, TimeSpan.Zero);
    private static readonly byte[] KeyA = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] KeyB = Enumerable.Range(101, 32).Select(i => (byte)i).ToArray();

    private static ConsistencyTokenKeys.Key Key(byte[] secret) => new(secret);

    private static RwSplitDataSource DataSource(params byte[][] keys) => RwSplitDataSource.Create(o =>
    {
        o.UseDialect(FakeDialect.Instance);
        o.Primary = "Server=token-primary";
        o.HealthMonitoring = false;
        foreach (var key in keys)
            o.ConsistencyTokenKeys.Add(key);
    });

    [Test]
    public void Round_trips()
    {
        var token = new ConsistencyToken(0xDEADBEEF12345678, 123_456_789_012, Written, Key(KeyA));
        var text = token.ToString();
        Assert.That(text, Does.StartWith("rws2."));
        Assert.That(text, Does.Not.Contain("=").And.Not.Contain("+").And.Not.Contain("/"), "safe in an HTTP header and a URL");
        Assert.That(text, Has.Length.EqualTo(ConsistencyToken.MaxLength));
        var parsed = ConsistencyToken.Parse(text);
        Assert.That(parsed, Is.EqualTo(token));
        Assert.That(parsed.ToString(), Is.EqualTo(text));
        Assert.That(parsed.Position, Is.EqualTo(123_456_789_012));
        Assert.That(parsed.WrittenAt, Is.EqualTo(Written));
        Assert.That(parsed.IdentityHash, Is.EqualTo(0xDEADBEEF12345678));
        Assert.That(parsed.IsSignedBy(Key(KeyA)), Is.True);
        Assert.That(parsed.IsSignedBy(Key(KeyB)), Is.False);
    }

    [Test]
    public void Time_only_token_round_trips()
        => Assert.That(ConsistencyToken.Parse(new ConsistencyToken(0, -1, Written, Key(KeyA)).ToString()).Position, Is.EqualTo(-1));

    [TestCase(null, "empty")]
    [TestCase("", "empty")]
    [TestCase("hello", "not an RwSplit consistency token")]
    [TestCase("rws3.AAAA", "version 'rws3.' is not supported")]
    [TestCase("rws1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd", "unauthenticated token of an earlier RwSplit version")]
    [TestCase("rws2.", "payload is not valid")]
    [TestCase("rws2.!!!!", "payload is not valid")]
    [TestCase("rws2.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd", "payload is not valid")]
    public void Garbled_or_foreign_text_is_refused_with_a_clear_reason(string? text, string reason)
    {
        var ex = Assert.Throws<RwSplitException>(() => ConsistencyToken.Parse(text!));
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.InvalidConsistencyToken));
        Assert.That(ex.Message, Does.Contain(reason));
        Assert.That(ConsistencyToken.TryParse(text, out _), Is.False);
    }

    [Test]
    public void An_oversized_token_is_refused_by_its_length_without_being_decoded()
    {
        var huge = "rws2." + new string('A', 1_000_000);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 1000; i++)
            Assert.That(ConsistencyToken.TryParse(huge, out _), Is.False);
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)), "refused in constant time, not by reading a megabyte a thousand times");
        var ex = Assert.Throws<RwSplitException>(() => ConsistencyToken.Parse(huge));
        Assert.That(ex!.Message, Does.Contain($"a token has at most {ConsistencyToken.MaxLength}"));
        Assert.That(ex.Message, Has.Length.LessThan(300), "the text is not quoted back");
    }

    [Test]
    public void An_altered_character_is_refused_as_altered()
    {
        using var dataSource = DataSource(KeyA);
        var text = dataSource.CreateToken(42, 1000, Written).ToString();
        Assert.DoesNotThrow(() => dataSource.ApplyConsistencyToken(text));
        for (var i = 5; i < text.Length - 1; i++)
        {
            var chars = text.ToCharArray();
            chars[i] = chars[i] == 'A' ? 'B' : 'A';
            var altered = new string(chars);
            // Refused either as malformed (version, length, a field out of range) or by its signature; never another exception type.
            var ex = Assert.Throws<RwSplitException>(() => dataSource.ApplyConsistencyToken(altered), $"character {i}");
            Assert.That(ex!.Error, Is.EqualTo(RwSplitError.InvalidConsistencyToken));
        }
    }

    [Test]
    public void A_token_forged_without_the_key_is_refused_and_changes_nothing()
    {
        using var dataSource = DataSource(KeyA);
        var genuine = ConsistencyToken.Parse(dataSource.CreateToken(42, 1000, Written).ToString());

        // The forger knows the format and the key's id (it is in every token), not the key: a huge position, a guessed MAC.
        var forged = new ConsistencyToken(42, long.MaxValue, Written, Key(Enumerable.Repeat((byte)7, 32).ToArray()));
        var bytes = Decode(forged.ToString());
        BitConverterBigEndian(bytes, 25, genuine.KeyId);
        var ex = Assert.Throws<RwSplitException>(() => dataSource.ApplyConsistencyToken(Encode(bytes)));
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.InvalidConsistencyToken));
        Assert.That(ex.Message, Does.Contain("forged or altered"));
        Assert.That(dataSource.FloorToken, Is.Null, "the refused token set no floor for the data source's connections");

        var otherKey = Assert.Throws<RwSplitException>(() => dataSource.ApplyConsistencyToken(forged.ToString()));
        Assert.That(otherKey!.Message, Does.Contain("signed with a key data source"));
    }

    [Test]
    public void Keys_rotate_the_first_signs_and_every_listed_one_verifies()
    {
        using var before = DataSource(KeyA);
        using var rotating = DataSource(KeyB, KeyA);
        using var after = DataSource(KeyB);
        var old = before.CreateToken(1, 10, Written).ToString();
        var fresh = rotating.CreateToken(1, 20, Written).ToString();

        Assert.That(ConsistencyToken.Parse(fresh).KeyId, Is.EqualTo(ConsistencyTokenKeys.IdOf(KeyB)), "the first key signs");
        Assert.DoesNotThrow(() => rotating.ApplyConsistencyToken(old), "an old token still verifies while its key is listed");
        Assert.DoesNotThrow(() => rotating.ApplyConsistencyToken(fresh));
        Assert.DoesNotThrow(() => after.ApplyConsistencyToken(fresh));
        var retired = Assert.Throws<RwSplitException>(() => after.ApplyConsistencyToken(old));
        Assert.That(retired!.Message, Does.Contain("a retired key").And.Contain("ConsistencyTokenKeys"));
        Assert.That(retired.Message, Does.Not.Contain(Convert.ToBase64String(KeyA)).And.Not.Contain(Convert.ToHexString(KeyA)), "no key in a message");
        var notYet = Assert.Throws<RwSplitException>(() => before.ApplyConsistencyToken(fresh));
        Assert.That(notYet!.Error, Is.EqualTo(RwSplitError.InvalidConsistencyToken));
    }

    [Test]
    public void Without_configured_keys_a_data_source_accepts_only_its_own_tokens()
    {
        using var one = DataSource();
        using var two = DataSource();
        var token = one.CreateToken(1, 10, Written).ToString();
        Assert.DoesNotThrow(() => one.ApplyConsistencyToken(token));
        var ex = Assert.Throws<RwSplitException>(() => two.ApplyConsistencyToken(token));
        Assert.That(ex!.Message, Does.Contain("Configure the same keys on every data source"));
    }

    [Test]
    public void Max_prefers_the_further_position()
    {
        var early = new ConsistencyToken(1, 10, Written, Key(KeyA));
        var late = new ConsistencyToken(1, 20, Written.AddSeconds(-5), Key(KeyA));
        Assert.That(ConsistencyToken.Max(early, late), Is.SameAs(late));
        Assert.That(ConsistencyToken.Max(late, early), Is.SameAs(late));
    }

    [Test]
    public void Identity_hash_is_stable_and_nonzero()
    {
        var id = "7312345678901234567";
        Assert.That(ConsistencyToken.HashIdentity(id), Is.EqualTo(ConsistencyToken.HashIdentity(string.Concat("731234567", "8901234567"))));
        Assert.That(ConsistencyToken.HashIdentity("a"), Is.Not.EqualTo(ConsistencyToken.HashIdentity("b")));
        Assert.That(ConsistencyToken.HashIdentity(null), Is.Zero);
    }

    private static byte[] Decode(string token)
    {
        var text = token["rws2.".Length..].Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(text + new string('=', (4 - (text.Length % 4)) % 4));
    }

    private static string Encode(byte[] bytes) => "rws2." + Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static void BitConverterBigEndian(byte[] bytes, int offset, uint value)
        => System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(offset), value);
}
