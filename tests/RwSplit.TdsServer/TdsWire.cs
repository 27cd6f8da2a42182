using System;
using System.Buffers.Binary;
using System.IO;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.Tds;

/// <summary>Packet header types (MS-TDS 2.2.3.1.1).</summary>
public enum TdsPacketType : byte
{
    SqlBatch = 0x01,
    PreTds7Login = 0x02,
    Rpc = 0x03,
    TabularResult = 0x04,
    Attention = 0x06,
    BulkLoad = 0x07,
    FederatedAuthToken = 0x08,
    TransactionManager = 0x0E,
    Login7 = 0x10,
    Sspi = 0x11,
    PreLogin = 0x12,
}

/// <summary>Packet header status bits (MS-TDS 2.2.3.1.2).</summary>
internal static class PacketStatus
{
    public const byte EndOfMessage = 0x01;
    public const byte Ignore = 0x02;
    public const byte ResetConnection = 0x08;
    public const byte ResetConnectionKeepTransaction = 0x10;
}

/// <summary>One client message: the packets up to end-of-message, payloads concatenated; status of the first packet.</summary>
internal sealed record TdsMessage(TdsPacketType Type, byte Status, byte[] Payload)
{
    public bool Ignored => (Status & PacketStatus.Ignore) != 0;
}

/// <summary>Reads client messages from a stream, validating packet headers.</summary>
internal sealed class TdsMessageReader(Stream stream)
{
    public const int HeaderLength = 8;
    private const int MaxPacketLength = 32768;
    private const int MaxMessageLength = 64 * 1024 * 1024;

    /// <summary>The next message, or <see langword="null"/> when the client closed the connection between messages.</summary>
    public async Task<TdsMessage?> ReadAsync(CancellationToken cancellationToken)
    {
        using var payload = new MemoryStream();
        var header = new byte[HeaderLength];
        TdsPacketType? type = null;
        byte firstStatus = 0;
        var ignore = false;
        while (true)
        {
            var read = await ReadFullyAsync(header, cancellationToken).ConfigureAwait(false);
            if (read == 0 && type is null)
                return null;
            if (read < HeaderLength)
                throw new TdsProtocolException("the client closed the connection inside a packet header", Concat(payload, header.AsSpan(0, read)), (int)payload.Length + read);

            var packetType = header[0];
            var status = header[1];
            var length = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2));
            if (type is null && packetType == 0x16)
                throw new TdsProtocolException("the client started a TLS handshake before PRELOGIN (Encrypt=Strict, TDS 8): the test server speaks TDS 7.4 without encryption, use Encrypt=false", header, 0);
            if (!Enum.IsDefined((TdsPacketType)packetType) || packetType is (byte)TdsPacketType.TabularResult or (byte)TdsPacketType.PreTds7Login)
                throw new TdsProtocolException($"unknown or server-only packet type 0x{packetType:x2}", Concat(payload, header), (int)payload.Length);
            if (length < HeaderLength || length > MaxPacketLength)
                throw new TdsProtocolException($"packet length {length} outside {HeaderLength}..{MaxPacketLength}", Concat(payload, header), (int)payload.Length + 2);
            if (type is null)
            {
                type = (TdsPacketType)packetType;
                firstStatus = status;
            }
            else if ((byte)type != packetType)
            {
                throw new TdsProtocolException($"packet type changed from 0x{(byte)type:x2} to 0x{packetType:x2} inside one message", Concat(payload, header), (int)payload.Length);
            }

            var body = new byte[length - HeaderLength];
            read = await ReadFullyAsync(body, cancellationToken).ConfigureAwait(false);
            if (read < body.Length)
                throw new TdsProtocolException($"the client closed the connection inside a packet ({read} of {body.Length} bytes)", Concat(payload, header, body.AsSpan(0, read)), (int)payload.Length + HeaderLength + read);
            payload.Write(body);
            if (payload.Length > MaxMessageLength)
                throw new TdsProtocolException($"message longer than {MaxMessageLength} bytes", header, 0);
            ignore |= (status & PacketStatus.Ignore) != 0;
            if ((status & PacketStatus.EndOfMessage) != 0)
                return new TdsMessage(type.Value, (byte)(firstStatus | (ignore ? PacketStatus.Ignore : 0)), payload.ToArray());
        }
    }

    private async Task<int> ReadFullyAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false);
            if (n == 0)
                break;
            total += n;
        }

        return total;
    }

    private static byte[] Concat(MemoryStream before, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        var result = new byte[before.Length + a.Length + b.Length];
        before.ToArray().CopyTo(result, 0);
        a.CopyTo(result.AsSpan((int)before.Length));
        b.CopyTo(result.AsSpan((int)before.Length + a.Length));
        return result;
    }
}

/// <summary>A growable little-endian writer for token streams.</summary>
internal sealed class TdsBuffer
{
    private byte[] _data = new byte[512];

    public int Length { get; private set; }

    public ReadOnlyMemory<byte> Memory => _data.AsMemory(0, Length);

    private Span<byte> Grow(int count)
    {
        if (Length + count > _data.Length)
            Array.Resize(ref _data, Math.Max(_data.Length * 2, Length + count));
        var span = _data.AsSpan(Length, count);
        Length += count;
        return span;
    }

    public void Byte(byte value) => Grow(1)[0] = value;

    public void UInt16(ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Grow(2), value);

    public void UInt16BigEndian(ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Grow(2), value);

    public void Int32(int value) => BinaryPrimitives.WriteInt32LittleEndian(Grow(4), value);

    public void UInt32(uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Grow(4), value);

    public void Int64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Grow(8), value);

    public void UInt64(ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Grow(8), value);

    public void Single(float value) => BinaryPrimitives.WriteSingleLittleEndian(Grow(4), value);

    public void Double(double value) => BinaryPrimitives.WriteDoubleLittleEndian(Grow(8), value);

    public void Bytes(ReadOnlySpan<byte> value) => value.CopyTo(Grow(value.Length));

    public void Unicode(string value) => Encoding.Unicode.GetBytes(value, Grow(value.Length * 2));

    /// <summary>B_VARCHAR: a character count in one byte, then UCS-2.</summary>
    public void BVarChar(string value)
    {
        if (value.Length > byte.MaxValue)
            throw new ArgumentException($"'{value}' is longer than 255 characters (B_VARCHAR).", nameof(value));
        Byte((byte)value.Length);
        Unicode(value);
    }

    /// <summary>US_VARCHAR: a character count in two bytes, then UCS-2.</summary>
    public void UsVarChar(string value)
    {
        if (value.Length > ushort.MaxValue)
            throw new ArgumentException("The text is longer than 65535 characters (US_VARCHAR).", nameof(value));
        UInt16((ushort)value.Length);
        Unicode(value);
    }

    /// <summary>B_VARBYTE: a byte count in one byte, then the bytes.</summary>
    public void BVarByte(ReadOnlySpan<byte> value)
    {
        Byte(checked((byte)value.Length));
        Bytes(value);
    }

    /// <summary>Reserves a two-byte length to patch with <see cref="PatchLength"/>.</summary>
    public int ReserveLength()
    {
        var at = Length;
        Grow(2);
        return at;
    }

    /// <summary>Writes the number of bytes written since <paramref name="at"/> + 2 into the reserved slot.</summary>
    public void PatchLength(int at) => BinaryPrimitives.WriteUInt16LittleEndian(_data.AsSpan(at), checked((ushort)(Length - at - 2)));

    public void Truncate(int length) => Length = length;

    public void PatchByte(int at, byte value) => _data[at] = value;

    public void PatchUInt16(int at, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(_data.AsSpan(at), value);

    public ushort ReadUInt16At(int at) => BinaryPrimitives.ReadUInt16LittleEndian(_data.AsSpan(at));
}

/// <summary>A bounds-checked little-endian reader over one message; every failure names the structure and the offset.</summary>
internal sealed class TdsPayloadReader(byte[] data, string structure)
{
    public byte[] Data => data;

    public string Structure => structure;

    public int Position { get; set; }

    public int Remaining => data.Length - Position;

    public bool AtEnd => Position >= data.Length;

    public TdsProtocolException Fail(string reason) => new($"malformed {structure}: {reason}", data, Position);

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > Remaining)
            throw Fail($"needs {count} more bytes, only {Remaining} left");
        var span = data.AsSpan(Position, count);
        Position += count;
        return span;
    }

    public byte Byte() => Take(1)[0];

    public byte PeekByte() => AtEnd ? throw Fail("needs 1 more byte, none left") : data[Position];

    public ushort UInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

    public ushort UInt16BigEndian() => BinaryPrimitives.ReadUInt16BigEndian(Take(2));

    public short Int16() => BinaryPrimitives.ReadInt16LittleEndian(Take(2));

    public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public uint UInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public ulong UInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    public float Single() => BinaryPrimitives.ReadSingleLittleEndian(Take(4));

    public double Double() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8));

    public byte[] Bytes(int count) => Take(count).ToArray();

    public void Skip(int count) => Take(count);

    public string Unicode(int characters) => Encoding.Unicode.GetString(Take(characters * 2));

    public string BVarChar() => Unicode(Byte());

    public string UsVarChar() => Unicode(UInt16());
}
