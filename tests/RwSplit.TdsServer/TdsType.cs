using System;
using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace RwSplit.Tds;

/// <summary>
/// A SQL Server data type as TDS describes it (TYPE_INFO, MS-TDS 2.2.5.6): its wire id, length, precision, scale and
/// collation, with the encoding of its values. Used for result-set columns, output parameters, and to read the
/// parameters a client sends in an RPC request.
/// </summary>
public sealed class TdsType
{
    /// <summary>SQL_Latin1_General_CP1_CI_AS (LCID 0x0409, sort id 52): what a default SQL Server install reports.</summary>
    internal static readonly byte[] DefaultCollation = [0x09, 0x04, 0xD0, 0x00, 0x34];

    private const int Max = 0xFFFF;
    private static readonly DateTime SqlEpoch = new(1900, 1, 1, 0, 0, 0, DateTimeKind.Unspecified);

    private TdsType(byte id, int length, byte precision = 0, byte scale = 0, byte[]? collation = null)
    {
        Id = id;
        Length = length;
        Precision = precision;
        Scale = scale;
        Collation = collation;
        Name = Describe();
    }

    /// <summary>The TDS type id (e.g. 0x26 INTN, 0xE7 NVARCHAR).</summary>
    public byte Id { get; }

    /// <summary>The fixed or maximum length in bytes (0xFFFF: a (max) type sent as PLP).</summary>
    public int Length { get; }

    /// <summary>Precision of decimal types.</summary>
    public byte Precision { get; }

    /// <summary>Scale of decimal and time types.</summary>
    public byte Scale { get; }

    internal byte[]? Collation { get; }

    /// <summary>The T-SQL name, such as <c>nvarchar(50)</c> or <c>decimal(18,2)</c>.</summary>
    public string Name { get; }

    public static TdsType TinyInt { get; } = new(0x26, 1);

    public static TdsType SmallInt { get; } = new(0x26, 2);

    public static TdsType Int { get; } = new(0x26, 4);

    public static TdsType BigInt { get; } = new(0x26, 8);

    public static TdsType Bit { get; } = new(0x68, 1);

    public static TdsType Real { get; } = new(0x6D, 4);

    public static TdsType Float { get; } = new(0x6D, 8);

    public static TdsType Money { get; } = new(0x6E, 8);

    public static TdsType DateTime { get; } = new(0x6F, 8);

    public static TdsType Date { get; } = new(0x28, 3);

    public static TdsType UniqueIdentifier { get; } = new(0x24, 16);

    public static TdsType NVarCharMax { get; } = new(0xE7, Max, collation: DefaultCollation);

    public static TdsType VarBinaryMax { get; } = new(0xA5, Max);

    public static TdsType Time(byte scale = 7) => new(0x29, TimeLength(CheckScale(scale)), scale: scale);

    public static TdsType DateTime2(byte scale = 7) => new(0x2A, TimeLength(CheckScale(scale)) + 3, scale: scale);

    public static TdsType DateTimeOffset(byte scale = 7) => new(0x2B, TimeLength(CheckScale(scale)) + 5, scale: scale);

    public static TdsType Decimal(byte precision = 18, byte scale = 0)
    {
        if (precision is < 1 or > 38 || scale > precision)
            throw new ArgumentOutOfRangeException(nameof(precision), $"decimal({precision},{scale}) is not a SQL Server type.");
        return new TdsType(0x6A, DecimalLength(precision), precision, scale);
    }

    /// <summary><c>nvarchar(n)</c>, n in characters (1..4000).</summary>
    public static TdsType NVarChar(int maxLength = 4000)
        => maxLength is >= 1 and <= 4000 ? new(0xE7, maxLength * 2, collation: DefaultCollation) : throw new ArgumentOutOfRangeException(nameof(maxLength), "nvarchar(n): n is 1..4000; use NVarCharMax.");

    /// <summary><c>varchar(n)</c> (Latin-1 text), n in bytes (1..8000).</summary>
    public static TdsType VarChar(int maxLength = 8000)
        => maxLength is >= 1 and <= 8000 ? new(0xA7, maxLength, collation: DefaultCollation) : throw new ArgumentOutOfRangeException(nameof(maxLength), "varchar(n): n is 1..8000.");

    public static TdsType VarBinary(int maxLength = 8000)
        => maxLength is >= 1 and <= 8000 ? new(0xA5, maxLength) : throw new ArgumentOutOfRangeException(nameof(maxLength), "varbinary(n): n is 1..8000; use VarBinaryMax.");

    /// <inheritdoc />
    public override string ToString() => Name;

    private enum Kind
    {
        Fixed,
        ByteLength,
        UShortLength,
        LongLength,
        Plp,
    }

    private Kind Class => Id switch
    {
        0x1F or 0x30 or 0x32 or 0x34 or 0x38 or 0x3A or 0x3B or 0x3C or 0x3D or 0x3E or 0x7A or 0x7F => Kind.Fixed,
        0x24 or 0x26 or 0x68 or 0x6D or 0x6E or 0x6F or 0x6A or 0x6C or 0x37 or 0x3F or 0x28 or 0x29 or 0x2A or 0x2B => Kind.ByteLength,
        0xA5 or 0xA7 or 0xAD or 0xAF or 0xE7 or 0xEF => Kind.UShortLength,
        0x22 or 0x23 or 0x63 => Kind.LongLength,
        0xF1 => Kind.Plp,
        _ => throw new NotSupportedException($"TDS type 0x{Id:x2} is not supported by the test server."),
    };

    private static byte CheckScale(byte scale) => scale <= 7 ? scale : throw new ArgumentOutOfRangeException(nameof(scale), "Time scales are 0..7.");

    private static int TimeLength(byte scale) => scale <= 2 ? 3 : scale <= 4 ? 4 : 5;

    private static int DecimalLength(byte precision) => precision <= 9 ? 5 : precision <= 19 ? 9 : precision <= 28 ? 13 : 17;

    private string Describe() => Id switch
    {
        0x1F => "null",
        0x30 => "tinyint",
        0x32 or 0x68 => "bit",
        0x34 => "smallint",
        0x38 => "int",
        0x7F => "bigint",
        0x26 => Length switch { 1 => "tinyint", 2 => "smallint", 4 => "int", _ => "bigint" },
        0x3B => "real",
        0x3E => "float",
        0x6D => Length == 4 ? "real" : "float",
        0x3C => "money",
        0x7A => "smallmoney",
        0x6E => Length == 4 ? "smallmoney" : "money",
        0x3A => "smalldatetime",
        0x3D => "datetime",
        0x6F => Length == 4 ? "smalldatetime" : "datetime",
        0x24 => "uniqueidentifier",
        0x28 => "date",
        0x29 => $"time({Scale})",
        0x2A => $"datetime2({Scale})",
        0x2B => $"datetimeoffset({Scale})",
        0x6A or 0x37 => $"decimal({Precision},{Scale})",
        0x6C or 0x3F => $"numeric({Precision},{Scale})",
        0xE7 => Length == Max ? "nvarchar(max)" : $"nvarchar({Length / 2})",
        0xEF => $"nchar({Length / 2})",
        0xA7 => Length == Max ? "varchar(max)" : $"varchar({Length})",
        0xAF => $"char({Length})",
        0xA5 => Length == Max ? "varbinary(max)" : $"varbinary({Length})",
        0xAD => $"binary({Length})",
        0x63 => "ntext",
        0x23 => "text",
        0x22 => "image",
        0xF1 => "xml",
        _ => $"type 0x{Id:x2}",
    };

    // ---- Reading what a client sends (RPC parameters) ----

    /// <summary>Reads a TYPE_INFO.</summary>
    internal static TdsType Read(TdsPayloadReader reader)
    {
        var id = reader.Byte();
        switch (id)
        {
            case 0x1F:
                return new TdsType(id, 0);
            case 0x30 or 0x32:
                return new TdsType(id, 1);
            case 0x34:
                return new TdsType(id, 2);
            case 0x38 or 0x3A or 0x3B or 0x7A:
                return new TdsType(id, 4);
            case 0x3C or 0x3D or 0x3E or 0x7F:
                return new TdsType(id, 8);
            case 0x24 or 0x26 or 0x68 or 0x6D or 0x6E or 0x6F:
                return new TdsType(id, reader.Byte());
            case 0x6A or 0x6C or 0x37 or 0x3F:
            {
                var length = reader.Byte();
                var precision = reader.Byte();
                var scale = reader.Byte();
                if (precision is < 1 or > 38 || scale > precision)
                    throw reader.Fail($"decimal precision {precision} / scale {scale} out of range");
                return new TdsType(id, length, precision, scale);
            }

            case 0x28:
                return new TdsType(id, 3);
            case 0x29 or 0x2A or 0x2B:
            {
                var scale = reader.Byte();
                if (scale > 7)
                    throw reader.Fail($"time scale {scale} > 7");
                return new TdsType(id, TimeLength(scale) + (id == 0x29 ? 0 : id == 0x2A ? 3 : 5), scale: scale);
            }

            case 0xA5 or 0xAD:
                return new TdsType(id, reader.UInt16());
            case 0xA7 or 0xAF or 0xE7 or 0xEF:
                return new TdsType(id, reader.UInt16(), collation: reader.Bytes(5));
            case 0x22:
                return new TdsType(id, reader.Int32());
            case 0x23 or 0x63:
                return new TdsType(id, reader.Int32(), collation: reader.Bytes(5));
            case 0xF1:
                if (reader.Byte() != 0)
                {
                    reader.BVarChar();
                    reader.BVarChar();
                    reader.UsVarChar();
                }

                return new TdsType(id, Max);
            case 0x62:
                throw reader.Fail("sql_variant parameters are not supported by the test server");
            case 0xF0:
                throw reader.Fail("CLR UDT parameters are not supported by the test server");
            case 0xF3:
                throw reader.Fail("table-valued parameters are not supported by the test server");
            default:
                reader.Position--;
                throw reader.Fail($"unknown TYPE_INFO type 0x{id:x2}");
        }
    }

    /// <summary>Reads a value of this type (as in an RPC parameter); <see langword="null"/> for SQL NULL.</summary>
    internal object? ReadValue(TdsPayloadReader reader)
    {
        byte[] raw;
        switch (Class)
        {
            case Kind.Fixed:
                if (Id == 0x1F)
                    return null;
                raw = reader.Bytes(Length);
                break;
            case Kind.ByteLength:
            {
                var n = reader.Byte();
                if (n == 0)
                    return null;
                raw = reader.Bytes(n);
                break;
            }

            case Kind.UShortLength:
                if (Length == Max)
                {
                    var plp = ReadPlp(reader);
                    if (plp is null)
                        return null;
                    raw = plp;
                }
                else
                {
                    var n = reader.UInt16();
                    if (n == 0xFFFF)
                        return null;
                    raw = reader.Bytes(n);
                }

                break;
            case Kind.LongLength:
            {
                var n = reader.Int32();
                if (n < 0)
                    return null;
                raw = reader.Bytes(n);
                break;
            }

            default:
            {
                var plp = ReadPlp(reader);
                if (plp is null)
                    return null;
                raw = plp;
                break;
            }
        }

        try
        {
            return Decode(raw);
        }
        catch (Exception ex) when (ex is ArgumentException or OverflowException or IndexOutOfRangeException)
        {
            throw reader.Fail($"cannot decode a {Name} value from {raw.Length} bytes ({ex.Message})");
        }
    }

    private static byte[]? ReadPlp(TdsPayloadReader reader)
    {
        var total = reader.UInt64();
        if (total == ulong.MaxValue)
            return null;
        using var data = new System.IO.MemoryStream();
        while (true)
        {
            var chunk = reader.UInt32();
            if (chunk == 0)
                break;
            if (chunk > int.MaxValue)
                throw reader.Fail($"PLP chunk of {chunk} bytes");
            data.Write(reader.Bytes((int)chunk));
        }

        if (total != ulong.MaxValue - 1 && (ulong)data.Length != total)
            throw reader.Fail($"PLP value announced {total} bytes but carried {data.Length}");
        return data.ToArray();
    }

    private object Decode(byte[] raw)
    {
        ReadOnlySpan<byte> b = raw;
        switch (Id)
        {
            case 0x30:
                return raw[0];
            case 0x32 or 0x68:
                return raw[0] != 0;
            case 0x34:
                return BinaryPrimitives.ReadInt16LittleEndian(b);
            case 0x38:
                return BinaryPrimitives.ReadInt32LittleEndian(b);
            case 0x7F:
                return BinaryPrimitives.ReadInt64LittleEndian(b);
            case 0x26:
                return raw.Length switch
                {
                    1 => (object)raw[0],
                    2 => BinaryPrimitives.ReadInt16LittleEndian(b),
                    4 => BinaryPrimitives.ReadInt32LittleEndian(b),
                    8 => BinaryPrimitives.ReadInt64LittleEndian(b),
                    _ => throw new ArgumentException("INTN length must be 1, 2, 4 or 8"),
                };
            case 0x3B:
                return BinaryPrimitives.ReadSingleLittleEndian(b);
            case 0x3E:
                return BinaryPrimitives.ReadDoubleLittleEndian(b);
            case 0x6D:
                return raw.Length == 4 ? (object)BinaryPrimitives.ReadSingleLittleEndian(b) : BinaryPrimitives.ReadDoubleLittleEndian(b);
            case 0x3C or 0x7A or 0x6E:
                return raw.Length == 4
                    ? BinaryPrimitives.ReadInt32LittleEndian(b) / 10000m
                    : (((long)BinaryPrimitives.ReadInt32LittleEndian(b) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(b[4..])) / 10000m;
            case 0x3A or 0x3D or 0x6F:
                return raw.Length == 4
                    ? SqlEpoch.AddDays(BinaryPrimitives.ReadUInt16LittleEndian(b)).AddMinutes(BinaryPrimitives.ReadUInt16LittleEndian(b[2..]))
                    : SqlEpoch.AddDays(BinaryPrimitives.ReadInt32LittleEndian(b)).AddTicks((long)Math.Round(BinaryPrimitives.ReadUInt32LittleEndian(b[4..]) * (TimeSpan.TicksPerSecond / 300.0)));
            case 0x24:
                return new Guid(b);
            case 0x28:
                return new DateTime(ReadDays(b) * TimeSpan.TicksPerDay, DateTimeKind.Unspecified);
            case 0x29:
                return TimeSpan.FromTicks(ReadTime(b, Scale));
            case 0x2A:
            {
                var timeLength = raw.Length - 3;
                return new DateTime(ReadDays(b[timeLength..]) * TimeSpan.TicksPerDay + ReadTime(b[..timeLength], Scale), DateTimeKind.Unspecified);
            }

            case 0x2B:
            {
                var timeLength = raw.Length - 5;
                var utcTicks = ReadDays(b[timeLength..]) * TimeSpan.TicksPerDay + ReadTime(b[..timeLength], Scale);
                var offset = TimeSpan.FromMinutes(BinaryPrimitives.ReadInt16LittleEndian(b[(timeLength + 3)..]));
                return new DateTimeOffset(utcTicks + offset.Ticks, offset);
            }

            case 0x6A or 0x6C or 0x37 or 0x3F:
                return DecodeDecimal(b, Scale);
            case 0xE7 or 0xEF or 0x63 or 0xF1:
                return Encoding.Unicode.GetString(b);
            case 0xA7 or 0xAF or 0x23:
                return Encoding.Latin1.GetString(b);
            case 0xA5 or 0xAD or 0x22:
                return raw;
            default:
                throw new ArgumentException($"no decoder for type 0x{Id:x2}");
        }
    }

    private static long ReadDays(ReadOnlySpan<byte> b) => b[0] | (b[1] << 8) | (b[2] << 16);

    private static long ReadTime(ReadOnlySpan<byte> b, byte scale)
    {
        long units = 0;
        for (var i = b.Length - 1; i >= 0; i--)
            units = (units << 8) | b[i];
        for (var i = scale; i < 7; i++)
            units *= 10;
        return units;
    }

    private static object DecodeDecimal(ReadOnlySpan<byte> b, byte scale)
    {
        var positive = b[0] == 1;
        var magnitude = new BigInteger(b[1..], isUnsigned: true, isBigEndian: false);
        if (magnitude.GetBitLength() <= 96 && scale <= 28)
        {
            var bytes = new byte[12];
            magnitude.TryWriteBytes(bytes, out _, isUnsigned: true, isBigEndian: false);
            return new decimal(BitConverter.ToInt32(bytes, 0), BitConverter.ToInt32(bytes, 4), BitConverter.ToInt32(bytes, 8), !positive, scale);
        }

        // Beyond System.Decimal: keep the exact digits as text.
        var digits = BigInteger.Abs(magnitude).ToString(CultureInfo.InvariantCulture).PadLeft(scale + 1, '0');
        return (positive ? "" : "-") + (scale == 0 ? digits : digits[..^scale] + "." + digits[^scale..]);
    }

    // ---- Writing what the server sends (COLMETADATA, RETURNVALUE, ROW) ----

    internal void WriteTypeInfo(TdsBuffer buffer)
    {
        buffer.Byte(Id);
        switch (Class)
        {
            case Kind.Fixed:
                return;
            case Kind.ByteLength:
                if (Id is 0x28)
                    return;
                if (Id is 0x29 or 0x2A or 0x2B)
                {
                    buffer.Byte(Scale);
                    return;
                }

                buffer.Byte((byte)Length);
                if (Id is 0x6A or 0x6C or 0x37 or 0x3F)
                {
                    buffer.Byte(Precision);
                    buffer.Byte(Scale);
                }

                return;
            case Kind.UShortLength:
                buffer.UInt16((ushort)Length);
                if (Collation is not null)
                    buffer.Bytes(Collation);
                return;
            case Kind.LongLength:
                buffer.Int32(Length);
                if (Collation is not null)
                    buffer.Bytes(Collation);
                return;
            default:
                buffer.Byte(0); // xml: no schema collection
                return;
        }
    }

    /// <summary>Writes a value; throws <see cref="ArgumentException"/> when it does not fit the type (a test script error).</summary>
    internal void WriteValue(TdsBuffer buffer, object? value)
    {
        var isNull = value is null or DBNull;
        var c = CultureInfo.InvariantCulture;
        switch (Class)
        {
            case Kind.Fixed:
                if (isNull)
                    throw new ArgumentException($"{Name} (a fixed-length TDS type) cannot carry NULL.");
                WriteFixed(buffer, value!, c);
                return;
            case Kind.ByteLength:
                if (isNull)
                {
                    buffer.Byte(0);
                    return;
                }

                WriteByteLength(buffer, value!, c);
                return;
            case Kind.UShortLength:
            {
                byte[]? bytes = isNull ? null : Id switch
                {
                    0xE7 or 0xEF => Encoding.Unicode.GetBytes(Convert.ToString(value, c)!),
                    0xA7 or 0xAF => Encoding.Latin1.GetBytes(Convert.ToString(value, c)!),
                    _ => value as byte[] ?? throw new ArgumentException($"{Name} takes a byte[], not {value!.GetType().Name}."),
                };
                if (Length == Max)
                {
                    WritePlp(buffer, bytes);
                    return;
                }

                if (bytes is null)
                {
                    buffer.UInt16(0xFFFF);
                    return;
                }

                if (bytes.Length > Length)
                    throw new ArgumentException($"A value of {bytes.Length} bytes does not fit {Name}.");
                buffer.UInt16((ushort)bytes.Length);
                buffer.Bytes(bytes);
                return;
            }

            default:
                throw new NotSupportedException($"The test server does not send {Name} values.");
        }
    }

    private void WriteFixed(TdsBuffer buffer, object value, IFormatProvider c)
    {
        switch (Id)
        {
            case 0x30:
                buffer.Byte(Convert.ToByte(value, c));
                break;
            case 0x32:
                buffer.Byte(Convert.ToBoolean(value, c) ? (byte)1 : (byte)0);
                break;
            case 0x34:
                buffer.UInt16(unchecked((ushort)Convert.ToInt16(value, c)));
                break;
            case 0x38:
                buffer.Int32(Convert.ToInt32(value, c));
                break;
            case 0x7F:
                buffer.Int64(Convert.ToInt64(value, c));
                break;
            case 0x3B:
                buffer.Single(Convert.ToSingle(value, c));
                break;
            case 0x3E:
                buffer.Double(Convert.ToDouble(value, c));
                break;
            default:
                WriteByteLengthBody(buffer, value, c);
                break;
        }
    }

    private void WriteByteLength(TdsBuffer buffer, object value, IFormatProvider c)
    {
        var lengthAt = buffer.Length;
        buffer.Byte(0);
        WriteByteLengthBody(buffer, value, c);
        buffer.PatchByte(lengthAt, checked((byte)(buffer.Length - lengthAt - 1)));
    }

    private void WriteByteLengthBody(TdsBuffer buffer, object value, IFormatProvider c)
    {
        switch (Id)
        {
            case 0x26:
                switch (Length)
                {
                    case 1:
                        buffer.Byte(Convert.ToByte(value, c));
                        break;
                    case 2:
                        buffer.UInt16(unchecked((ushort)Convert.ToInt16(value, c)));
                        break;
                    case 4:
                        buffer.Int32(Convert.ToInt32(value, c));
                        break;
                    default:
                        buffer.Int64(Convert.ToInt64(value, c));
                        break;
                }

                break;
            case 0x68:
                buffer.Byte(Convert.ToBoolean(value, c) ? (byte)1 : (byte)0);
                break;
            case 0x6D:
                if (Length == 4)
                    buffer.Single(Convert.ToSingle(value, c));
                else
                    buffer.Double(Convert.ToDouble(value, c));
                break;
            case 0x6E or 0x3C or 0x7A:
            {
                var scaled = (long)decimal.Round(Convert.ToDecimal(value, c) * 10000m);
                if (Length == 4)
                {
                    buffer.Int32(checked((int)scaled));
                }
                else
                {
                    buffer.Int32((int)(scaled >> 32));
                    buffer.UInt32(unchecked((uint)scaled));
                }

                break;
            }

            case 0x6F or 0x3D or 0x3A:
            {
                var time = Convert.ToDateTime(value, c);
                if (Length == 4)
                {
                    buffer.UInt16(checked((ushort)(time.Date - SqlEpoch).TotalDays));
                    buffer.UInt16((ushort)time.TimeOfDay.TotalMinutes);
                }
                else
                {
                    buffer.Int32((int)(time.Date - SqlEpoch).TotalDays);
                    buffer.UInt32((uint)Math.Round(time.TimeOfDay.Ticks * 300.0 / TimeSpan.TicksPerSecond));
                }

                break;
            }

            case 0x24:
                buffer.Bytes((value is Guid g ? g : Guid.Parse(Convert.ToString(value, c)!)).ToByteArray());
                break;
            case 0x28:
                WriteDays(buffer, DateOf(value, c));
                break;
            case 0x29:
                WriteTime(buffer, value switch
                {
                    TimeSpan span => span.Ticks,
                    TimeOnly only => only.Ticks,
                    _ => throw new ArgumentException($"{Name} takes a TimeSpan or TimeOnly, not {value.GetType().Name}."),
                });
                break;
            case 0x2A:
            {
                var time = value is DateTimeOffset dto ? dto.DateTime : Convert.ToDateTime(value, c);
                WriteTime(buffer, time.TimeOfDay.Ticks);
                WriteDays(buffer, time.Date);
                break;
            }

            case 0x2B:
            {
                var dto = value is DateTimeOffset d ? d : new DateTimeOffset(Convert.ToDateTime(value, c), TimeSpan.Zero);
                var utc = dto.UtcDateTime;
                WriteTime(buffer, utc.TimeOfDay.Ticks);
                WriteDays(buffer, utc.Date);
                buffer.UInt16(unchecked((ushort)(short)dto.Offset.TotalMinutes));
                break;
            }

            case 0x6A or 0x6C or 0x37 or 0x3F:
                WriteDecimal(buffer, Convert.ToDecimal(value, c));
                break;
            default:
                throw new NotSupportedException($"The test server does not send {Name} values.");
        }
    }

    private static DateTime DateOf(object value, IFormatProvider c) => value switch
    {
        DateOnly d => d.ToDateTime(TimeOnly.MinValue),
        _ => Convert.ToDateTime(value, c).Date,
    };

    private static void WriteDays(TdsBuffer buffer, DateTime date)
    {
        var days = date.Ticks / TimeSpan.TicksPerDay;
        buffer.Byte((byte)days);
        buffer.Byte((byte)(days >> 8));
        buffer.Byte((byte)(days >> 16));
    }

    private void WriteTime(TdsBuffer buffer, long ticks)
    {
        var units = ticks;
        for (var i = Scale; i < 7; i++)
            units /= 10;
        var length = TimeLength(Scale);
        for (var i = 0; i < length; i++)
            buffer.Byte((byte)(units >> (8 * i)));
    }

    private void WriteDecimal(TdsBuffer buffer, decimal value)
    {
        var rounded = decimal.Round(value, Math.Min((int)Scale, 28), MidpointRounding.AwayFromZero);
        var bits = decimal.GetBits(rounded);
        var exponent = (bits[3] >> 16) & 0xFF;
        var magnitude = ((BigInteger)(uint)bits[2] << 64) | ((BigInteger)(uint)bits[1] << 32) | (uint)bits[0];
        if (exponent < Scale)
            magnitude *= BigInteger.Pow(10, Scale - exponent);
        else if (exponent > Scale)
            magnitude /= BigInteger.Pow(10, exponent - Scale);
        if (magnitude >= BigInteger.Pow(10, Precision))
            throw new ArgumentException($"{value} does not fit {Name}.");
        buffer.Byte(value < 0 ? (byte)0 : (byte)1);
        var bytes = new byte[DecimalLength(Precision) - 1];
        magnitude.TryWriteBytes(bytes, out _, isUnsigned: true, isBigEndian: false);
        buffer.Bytes(bytes);
    }

    private static void WritePlp(TdsBuffer buffer, byte[]? bytes)
    {
        if (bytes is null)
        {
            buffer.UInt64(ulong.MaxValue);
            return;
        }

        buffer.UInt64((ulong)bytes.Length);
        if (bytes.Length > 0)
        {
            buffer.UInt32((uint)bytes.Length);
            buffer.Bytes(bytes);
        }

        buffer.UInt32(0);
    }
}
