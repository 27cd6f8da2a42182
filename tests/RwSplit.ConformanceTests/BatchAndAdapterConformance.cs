using System.Data;
using System.Threading.Tasks;
using NUnit.Framework;

namespace RwSplit.ConformanceTests;

[EveryProvider]
public sealed class BatchAndAdapterConformance(Provider provider) : Conformance(provider)
{
    [Test]
    public async Task A_batch_returns_each_statement_s_result_and_the_sum_of_affected_rows()
    {
        await using var connection = await OpenAsync();
        await using var batch = connection.CreateBatch();
        var first = batch.CreateBatchCommand();
        first.CommandText = "UPDATE conformance SET seen = seen WHERE id <= 2";
        batch.BatchCommands.Add(first);
        var second = batch.CreateBatchCommand();
        second.CommandText = "UPDATE conformance SET seen = seen WHERE id = 3";
        batch.BatchCommands.Add(second);
        Assert.That(await batch.ExecuteNonQueryAsync(), Is.EqualTo(3));
        Assert.That(first.RecordsAffected, Is.EqualTo(2));
        Assert.That(second.RecordsAffected, Is.EqualTo(1));

        await using var reads = connection.CreateBatch();
        foreach (var text in new[] { "SELECT name FROM conformance WHERE id = 1", "SELECT name FROM conformance WHERE id = 2" })
        {
            var command = reads.CreateBatchCommand();
            command.CommandText = text;
            reads.BatchCommands.Add(command);
        }

        await using var reader = await reads.ExecuteReaderAsync();
        Assert.That(await reader.ReadAsync() && reader.GetString(0) == "row 1", Is.True);
        Assert.That(await reader.NextResultAsync() && await reader.ReadAsync() && reader.GetString(0) == "row 2", Is.True);
    }

    [Test]
    public async Task A_data_adapter_fills_a_table()
    {
        await using var connection = await OpenAsync();
        using var adapter = Factory.CreateDataAdapter()!;
        await using var select = Command(connection, "SELECT id, name FROM conformance WHERE id <= 5 ORDER BY id");
        adapter.SelectCommand = select;
        var table = new DataTable();
        Assert.That(adapter.Fill(table), Is.EqualTo(5));
        Assert.That(table.Columns[1].ColumnName, Is.EqualTo("name"));
        Assert.That(table.Rows[4]["name"], Is.EqualTo("row 5"));
    }
}
