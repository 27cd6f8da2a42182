using System;
using System.Collections;
using System.Collections.ObjectModel;
using System.Data;
using System.Data.Common;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit;

/// <summary>
/// Returned only for <see cref="CommandBehavior.CloseConnection"/>: the provider's reader, forwarded member by member,
/// whose <see cref="Close"/> also closes the logical <see cref="RwSplitConnection"/> (the provider would only close its
/// own physical connection). Every other execution returns the provider's reader itself.
/// </summary>
public sealed class RwSplitDataReader : DbDataReader
{
    private readonly RwSplitConnection _connection;
    private bool _closed;

    internal RwSplitDataReader(DbDataReader inner, RwSplitConnection connection)
    {
        InnerReader = inner;
        _connection = connection;
    }

    /// <summary>The provider's own reader.</summary>
    public DbDataReader InnerReader { get; }

    /// <inheritdoc />
    public override object this[int ordinal] => InnerReader[ordinal];

    /// <inheritdoc />
    public override object this[string name] => InnerReader[name];

    /// <inheritdoc />
    public override int Depth => InnerReader.Depth;

    /// <inheritdoc />
    public override int FieldCount => InnerReader.FieldCount;

    /// <inheritdoc />
    public override bool HasRows => InnerReader.HasRows;

    /// <inheritdoc />
    public override bool IsClosed => _closed || InnerReader.IsClosed;

    /// <inheritdoc />
    public override int RecordsAffected => InnerReader.RecordsAffected;

    /// <inheritdoc />
    public override int VisibleFieldCount => InnerReader.VisibleFieldCount;

    /// <inheritdoc />
    public override bool GetBoolean(int ordinal) => InnerReader.GetBoolean(ordinal);

    /// <inheritdoc />
    public override byte GetByte(int ordinal) => InnerReader.GetByte(ordinal);

    /// <inheritdoc />
    public override long GetBytes(int ordinal, long dataOffset, byte[]? buffer, int bufferOffset, int length) => InnerReader.GetBytes(ordinal, dataOffset, buffer, bufferOffset, length);

    /// <inheritdoc />
    public override char GetChar(int ordinal) => InnerReader.GetChar(ordinal);

    /// <inheritdoc />
    public override long GetChars(int ordinal, long dataOffset, char[]? buffer, int bufferOffset, int length) => InnerReader.GetChars(ordinal, dataOffset, buffer, bufferOffset, length);

    /// <inheritdoc />
    public override string GetDataTypeName(int ordinal) => InnerReader.GetDataTypeName(ordinal);

    /// <inheritdoc />
    public override DateTime GetDateTime(int ordinal) => InnerReader.GetDateTime(ordinal);

    /// <inheritdoc />
    public override decimal GetDecimal(int ordinal) => InnerReader.GetDecimal(ordinal);

    /// <inheritdoc />
    public override double GetDouble(int ordinal) => InnerReader.GetDouble(ordinal);

    /// <inheritdoc />
    public override Type GetFieldType(int ordinal) => InnerReader.GetFieldType(ordinal);

    /// <inheritdoc />
    public override float GetFloat(int ordinal) => InnerReader.GetFloat(ordinal);

    /// <inheritdoc />
    public override Guid GetGuid(int ordinal) => InnerReader.GetGuid(ordinal);

    /// <inheritdoc />
    public override short GetInt16(int ordinal) => InnerReader.GetInt16(ordinal);

    /// <inheritdoc />
    public override int GetInt32(int ordinal) => InnerReader.GetInt32(ordinal);

    /// <inheritdoc />
    public override long GetInt64(int ordinal) => InnerReader.GetInt64(ordinal);

    /// <inheritdoc />
    public override string GetName(int ordinal) => InnerReader.GetName(ordinal);

    /// <inheritdoc />
    public override int GetOrdinal(string name) => InnerReader.GetOrdinal(name);

    /// <inheritdoc />
    public override string GetString(int ordinal) => InnerReader.GetString(ordinal);

    /// <inheritdoc />
    public override object GetValue(int ordinal) => InnerReader.GetValue(ordinal);

    /// <inheritdoc />
    public override int GetValues(object[] values) => InnerReader.GetValues(values);

    /// <inheritdoc />
    public override bool IsDBNull(int ordinal) => InnerReader.IsDBNull(ordinal);

    /// <inheritdoc />
    public override Task<bool> IsDBNullAsync(int ordinal, CancellationToken cancellationToken) => InnerReader.IsDBNullAsync(ordinal, cancellationToken);

    /// <inheritdoc />
    public override T GetFieldValue<T>(int ordinal) => InnerReader.GetFieldValue<T>(ordinal);

    /// <inheritdoc />
    public override Task<T> GetFieldValueAsync<T>(int ordinal, CancellationToken cancellationToken) => InnerReader.GetFieldValueAsync<T>(ordinal, cancellationToken);

    /// <inheritdoc />
    public override Stream GetStream(int ordinal) => InnerReader.GetStream(ordinal);

    /// <inheritdoc />
    public override TextReader GetTextReader(int ordinal) => InnerReader.GetTextReader(ordinal);

    /// <inheritdoc />
    public override Type GetProviderSpecificFieldType(int ordinal) => InnerReader.GetProviderSpecificFieldType(ordinal);

    /// <inheritdoc />
    public override object GetProviderSpecificValue(int ordinal) => InnerReader.GetProviderSpecificValue(ordinal);

    /// <inheritdoc />
    public override int GetProviderSpecificValues(object[] values) => InnerReader.GetProviderSpecificValues(values);

    /// <inheritdoc />
    public override DataTable? GetSchemaTable() => InnerReader.GetSchemaTable();

    /// <inheritdoc />
    public override Task<DataTable?> GetSchemaTableAsync(CancellationToken cancellationToken = default) => InnerReader.GetSchemaTableAsync(cancellationToken);

    /// <inheritdoc />
    public override Task<ReadOnlyCollection<DbColumn>> GetColumnSchemaAsync(CancellationToken cancellationToken = default) => InnerReader.GetColumnSchemaAsync(cancellationToken);

    /// <inheritdoc />
    public override bool NextResult() => InnerReader.NextResult();

    /// <inheritdoc />
    public override Task<bool> NextResultAsync(CancellationToken cancellationToken) => InnerReader.NextResultAsync(cancellationToken);

    /// <inheritdoc />
    public override bool Read() => InnerReader.Read();

    /// <inheritdoc />
    public override Task<bool> ReadAsync(CancellationToken cancellationToken) => InnerReader.ReadAsync(cancellationToken);

    /// <inheritdoc />
    public override IEnumerator GetEnumerator() => new DbEnumerator(this, closeReader: false);

    /// <inheritdoc />
    public override void Close()
    {
        if (_closed)
            return;
        _closed = true;
        try
        {
            InnerReader.Close();
        }
        finally
        {
            _connection.Close();
        }
    }

    /// <inheritdoc />
    public override async Task CloseAsync()
    {
        if (_closed)
            return;
        _closed = true;
        try
        {
            await InnerReader.CloseAsync().ConfigureAwait(false);
        }
        finally
        {
            await _connection.CloseAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Close();
            InnerReader.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        await CloseAsync().ConfigureAwait(false);
        await InnerReader.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }
}
