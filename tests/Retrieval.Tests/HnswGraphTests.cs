using AspireTune.Retrieval.Index;

namespace AspireTune.Retrieval.Tests;

public class HnswGraphTests
{
    private static float[][] Clustered(int count, int dim, int seed)
    {
        var random = new Random(seed);
        var centers = Enumerable.Range(0, 20).Select(_ => Enumerable.Range(0, dim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray()).ToArray();
        return Enumerable.Range(0, count).Select(_ =>
        {
            var c = centers[random.Next(centers.Length)];
            return c.Select(x => x + (float)(random.NextDouble() - 0.5) * 0.6f).ToArray();
        }).ToArray();
    }

    [Fact]
    public void Search_ClusteredVectors_FindsNearlyAllExactNeighbours()
    {
        var data = Clustered(3000, 32, 1);
        var graph = new HnswGraph(32, VectorDistance.Cosine, m: 12, efConstruction: 100);
        foreach (var v in data)
            graph.Add(v);
        var queries = Clustered(100, 32, 2);
        var hits = 0;
        foreach (var q in queries)
        {
            var exact = graph.SearchExact(q, 10).Select(r => r.Node).ToHashSet();
            hits += graph.Search(q, 10, ef: 64).Count(r => exact.Contains(r.Node));
        }
        (hits / 1000.0).Should().BeGreaterThan(0.95);
    }

    [Fact]
    public void Search_RemovedNode_IsNeverReturned()
    {
        var graph = new HnswGraph(4, VectorDistance.Cosine, m: 4, efConstruction: 16);
        graph.Add([1, 0, 0, 0]);
        graph.Add([0, 1, 0, 0]);
        graph.Add([0.9f, 0.1f, 0, 0]);
        graph.Remove(0);

        var found = graph.Search([1, 0, 0, 0], 2, ef: 16);

        found.Select(f => f.Node).Should().Equal(2, 1);
        graph.SearchExact([1, 0, 0, 0], 1)[0].Node.Should().Be(2);
    }

    [Fact]
    public void WriteRead_RoundTrip_AnswersTheSame()
    {
        var data = Clustered(500, 16, 3);
        var graph = new HnswGraph(16, VectorDistance.Dot, m: 8, efConstruction: 50);
        foreach (var v in data)
            graph.Add(v);
        graph.Remove(7);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            graph.Write(writer);
        stream.Position = 0;
        var loaded = HnswGraph.Read(new BinaryReader(stream));

        loaded.Count.Should().Be(500);
        loaded.IsRemoved(7).Should().BeTrue();
        loaded.Search(data[42], 5, 32).Should().Equal(graph.Search(data[42], 5, 32));
    }

    [Fact]
    public void Add_WrongDimensions_Throws()
    {
        var graph = new HnswGraph(4, VectorDistance.Euclid);
        var act = () => graph.Add([1, 2, 3]);
        act.Should().Throw<ArgumentException>().WithMessage("*3 dimensions*4*");
    }
}
