using NUnit.Framework;

namespace RwSplit.ConformanceTests;

[EveryProvider]
public sealed class FactoryConformance(Provider provider) : Conformance(provider)
{
    [Test]
    public void Creates_every_object_an_application_asks_for()
    {
        Assert.That(Factory.CreateConnection(), Is.Not.Null);
        Assert.That(Factory.CreateCommand(), Is.Not.Null);
        Assert.That(Factory.CreateParameter(), Is.Not.Null);
        Assert.That(Factory.CreateConnectionStringBuilder(), Is.Not.Null);
        Assert.That(Factory.CanCreateDataAdapter, Is.True);
        Assert.That(Factory.CreateDataAdapter(), Is.Not.Null);
        Assert.That(Factory.CanCreateCommandBuilder, Is.True);
        Assert.That(Factory.CreateCommandBuilder(), Is.Not.Null);
        Assert.That(Factory.CanCreateBatch, Is.True);
        Assert.That(Factory.CreateBatch(), Is.Not.Null);
        Assert.That(Factory.CreateBatchCommand(), Is.Not.Null);
    }

    [Test]
    public void A_new_connection_is_closed_with_the_string_it_was_given()
    {
        using var connection = Factory.CreateConnection()!;
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Closed));
        Assert.That(connection.ConnectionString, Is.Empty);
        connection.ConnectionString = ConnectionString;
        Assert.That(connection.ConnectionString, Is.EqualTo(ConnectionString), "before Open, the string as given");
    }
}
