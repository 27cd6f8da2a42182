using NUnit.Framework;

namespace RwSplit.Tests;

/// <summary>What an opened drop-in connection reports as its string: the caller's, without secrets (as the providers do).</summary>
public sealed class ConnectionStringsTests
{
    [TestCase("Server=tcp:sql-primary,1433;Database=app;User Id=app;Password=Sup3rSecret!;Replicas=sql-r1|sql-r2,1444", "Sup3rSecret!")]
    [TestCase("Host=h;Username=u;Password=pw-1;SSL Password=ssl-2;Replicas=r", "pw-1")]
    [TestCase("Host=h;Username=u;Password=pw-1;SSL Password=ssl-2;Replicas=r", "ssl-2")]
    [TestCase("Data Source=s;User ID=u;PWD=pw-3", "pw-3")]
    [TestCase("Host=h;Username=u;PSW=pw-4", "pw-4")]
    public void Secrets_are_removed_and_the_rest_stays(string connectionString, string secret)
    {
        var shown = ConnectionStrings.WithoutSecrets(connectionString);
        Assert.That(shown, Does.Not.Contain(secret));
        Assert.That(shown, Does.Contain("u").And.Not.Empty);
    }

    [Test]
    public void Persist_Security_Info_keeps_them_as_the_providers_do()
        => Assert.That(ConnectionStrings.WithoutSecrets("Host=h;Password=pw-5;Persist Security Info=True"), Does.Contain("pw-5"));

    [Test]
    public void A_string_that_does_not_parse_shows_nothing()
        => Assert.That(ConnectionStrings.WithoutSecrets("Host=h;Password='unterminated"), Is.Empty);
}
