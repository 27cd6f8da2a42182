using System;
using NUnit.Framework;
using RwSplit.Routing;

namespace RwSplit.Tests.Routing;

public sealed class ConsistencyTokenTests
{
    private static readonly DateTimeOffset Written = new(2026, 11, 26, 12, 0, 0, 123, TimeSpan.Zero);

    [Test]
    public void Round_trips()
    {
        var token = new ConsistencyToken(0xDEADBEEF12345678, 123_456_789_012, Written);
        var text = token.ToString();
        Assert.That(text, Does.StartWith("rws1."));
        Assert.That(text, Does.Not.Contain("=").And.Not.Contain("+").And.Not.Contain("/"), "safe in an HTTP header and a URL");
        var parsed = ConsistencyToken.Parse(text);
        Assert.That(parsed, Is.EqualTo(token));
        Assert.That(parsed.Position, Is.EqualTo(123_456_789_012));
        Assert.That(parsed.WrittenAt, Is.EqualTo(Written));
        Assert.That(parsed.IdentityHash, Is.EqualTo(0xDEADBEEF12345678));
    }

    [Test]
    public void Time_only_token_round_trips() => Assert.That(ConsistencyToken.Parse(new ConsistencyToken(0, -1, Written).ToString()).Position, Is.EqualTo(-1));

    [TestCase(null, "empty")]
    [TestCase("", "empty")]
    [TestCase("hello", "not an RwSplit consistency token")]
    [TestCase("rws2.AAAA", "version 'rws2.' is not supported")]
    [TestCase("rws1.", "payload is not valid")]
    [TestCase("rws1.!!!!", "payload is not valid")]
    [TestCase("rws1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd", "payload is not valid")]
    public void Garbled_or_foreign_text_is_refused_with_a_clear_reason(string? text, string reason)
    {
        var ex = Assert.Throws<RwSplitException>(() => ConsistencyToken.Parse(text!));
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.InvalidConsistencyToken));
        Assert.That(ex.Message, Does.Contain(reason));
        Assert.That(ConsistencyToken.TryParse(text, out _), Is.False);
    }

    [Test]
    public void A_changed_character_fails_the_checksum()
    {
        var text = new ConsistencyToken(42, 1000, Written).ToString();
        var chars = text.ToCharArray();
        var i = 10;
        chars[i] = chars[i] == 'A' ? 'B' : 'A';
        var ex = Assert.Throws<RwSplitException>(() => ConsistencyToken.Parse(new string(chars)));
        Assert.That(ex!.Message, Does.Contain("checksum"));
    }

    [Test]
    public void Max_prefers_the_further_position()
    {
        var early = new ConsistencyToken(1, 10, Written);
        var late = new ConsistencyToken(1, 20, Written.AddSeconds(-5));
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
}
