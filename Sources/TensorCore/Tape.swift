// TensorCore: reverse-mode automatic differentiation. Every op that reads a tensor requiring a
// gradient records a `Node`: its input nodes and a closure that maps the gradient of its output to
// the gradients of its inputs. The closure holds what the op's forward kept for it (and nothing
// else), so running the backward and dropping the closure frees those activations at once.
// Gradients are taken with respect to inputs and activations only; parameters are constants.
// This is the one place where gradients are accumulated; each op's rule sits beside its forward.
//
// Rule of the house for op authors: a rule must reach every buffer it reads through a `Tensor` it
// captures (e.g. `x.data` inside the closure), never through a raw pointer taken before the closure:
// the captured tensor is what keeps the memory alive until the backward has run.

import Foundation

/// One recorded op: its inputs and its gradient rule.
public final class Node: @unchecked Sendable {
    /// Nodes of the inputs the rule returns gradients for (same order).
    fileprivate var inputs: [Node]
    /// Maps dOutput to one gradient per input (nil: no contribution). Nil for leaves and after use.
    fileprivate var rule: ((Tensor) -> [Tensor?])?
    /// Accumulated gradient of this node's output.
    fileprivate var grad: Tensor?
    /// Shape of the node's output, to check gradients against.
    public let shape: [Int]
    /// Set on leaves created by `Tensor.requiringGrad()`.
    public let isLeaf: Bool

    init(leafOf shape: [Int]) {
        inputs = []
        rule = nil
        self.shape = shape
        isLeaf = true
    }

    init(shape: [Int], inputs: [Node], rule: @escaping (Tensor) -> [Tensor?]) {
        self.inputs = inputs
        self.rule = rule
        self.shape = shape
        isLeaf = false
    }
}

/// Recording and running reverse-mode gradients.
public enum Tape {
    /// Attaches a node to `output` when any of `inputs` requires a gradient.
    /// `rule` receives dOutput and returns one gradient (or nil) per element of `inputs`, in order;
    /// gradients for inputs that do not require one are ignored, so a rule may compute them lazily.
    @inlinable
    public static func record(_ output: Tensor, inputs: [Tensor], rule: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        guard inputs.contains(where: { $0.requiresGrad }) else { return output }
        return attach(output, inputs: inputs, rule: rule)
    }

    @usableFromInline
    static func attach(_ output: Tensor, inputs: [Tensor], rule: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        // Keep only the inputs that require a gradient, and adapt the rule's result to them.
        let mask = inputs.map { $0.requiresGrad }
        let nodes = inputs.compactMap { $0.node }
        let filtered: (Tensor) -> [Tensor?]
        if mask.allSatisfy({ $0 }) {
            filtered = rule
        } else {
            filtered = { d in
                let all = rule(d)
                var out: [Tensor?] = []
                out.reserveCapacity(nodes.count)
                for (g, m) in zip(all, mask) where m { out.append(g) }
                return out
            }
        }
        var result = output
        result.node = Node(shape: output.shape, inputs: nodes, rule: filtered)
        return result
    }

    /// Runs the backward pass from `output`, seeded with `seed` (same shape as `output`).
    ///
    /// Nodes are visited in reverse topological order. With `retainGraph == false` each node's rule
    /// and saved activations are released as soon as it has run, so memory falls as the pass goes.
    /// With `retainGraph == true` the graph stays usable for another backward from another output
    /// (`backwardEach` takes several outputs' gradients from one forward with less memory).
    /// Read leaf gradients afterwards with `gradient(of:)`.
    public static func backward(_ output: Tensor, seed: Tensor, retainGraph: Bool = false) {
        guard let root = output.node else { return }
        precondition(seed.shape == output.shape, "backward: seed shape \(seed.shape) differs from output \(output.shape)")
        _ = run(topologicalOrder(from: root).reversed(), seed: seed.detached(), stop: nil, retainGraph: retainGraph)
    }

    /// Backward passes from several outputs of one forward, to one leaf: for each output i, in turn,
    /// `body(i, g)` receives the leaf's gradient g, the bits that `backward(outputs[i], seed: seed(i))`
    /// and `gradient(of: leaf)` give alone. `seed(i)` has the shape of `outputs[i]`; it is asked for
    /// when the pass reaches that output.
    ///
    /// `cuts` (default: the outputs themselves) names, per output, a tensor its pass goes through:
    /// the stage's output that the next stage reads, where the outputs are side branches of it. When
    /// every path from outputs[i] to the leaf passes through cuts[i], and every path from cuts[i] to
    /// the leaf through cuts[i - 1] (a chain, as in stages that run one after another), the passes go
    /// part by part, from the last output down: the graph between two cuts is run once for each
    /// gradient that reaches it, released after the last, and the gradients wait at the next cut (one
    /// tensor of that cut's size each). The memory held is then never more than one pass from the
    /// last output holds, instead of the whole graph for every pass but the last. Each pass visits its
    /// nodes in the same order as alone, so every gradient is accumulated in the same order.
    /// Otherwise (not a chain) the passes run one after another over a retained graph.
    public static func backwardEach(_ outputs: [Tensor], cuts: [Tensor]? = nil, seed: (Int) -> Tensor, leaf: Tensor,
                                    body: (Int, Tensor) -> Void) {
        let k = outputs.count
        func checkedSeed(_ i: Int) -> Tensor {
            let s = seed(i)
            precondition(s.shape == outputs[i].shape, "backwardEach: seed shape \(s.shape) differs from output \(outputs[i].shape)")
            return s.detached()
        }
        let roots = outputs.compactMap(\.node)
        let cutNodes = (cuts ?? outputs).compactMap(\.node)
        guard roots.count == k, cutNodes.count == k, var parts = chainParts(roots: roots, cuts: cutNodes) else {
            for i in 0..<k {
                backward(outputs[i], seed: checkedSeed(i), retainGraph: i != k - 1)
                body(i, gradient(of: leaf))
            }
            return
        }
        // Gradients waiting at the cut above part i: (which output's pass, the gradient there).
        var waiting: [(pass: Int, gradient: Tensor)] = []
        // A pass's gradient at a cut waits there; one that reached no cut reaches no leaf either.
        func wait(_ pass: Int, _ g: Tensor?, in list: inout [(pass: Int, gradient: Tensor)]) {
            if let g { list.append((pass, g)) } else { body(pass, Tensor.zeros(leaf.shape)) }
        }
        for i in stride(from: k - 1, through: 0, by: -1) {
            // Output i's pass joins at its cut, through its branch (nothing when the output is the cut).
            wait(i, run(parts.branches[i], seed: checkedSeed(i), stop: cutNodes[i], retainGraph: false), in: &waiting)
            parts.branches[i] = []
            let stop = i > 0 ? cutNodes[i - 1] : nil
            var next: [(pass: Int, gradient: Tensor)] = []
            for (j, w) in waiting.enumerated() {
                let g = run(parts.trunk[i], seed: w.gradient, stop: stop, retainGraph: j != waiting.count - 1)
                if stop == nil { body(w.pass, gradient(of: leaf)) } else { wait(w.pass, g, in: &next) }
            }
            parts.trunk[i] = []
            waiting = next
        }
    }

    /// The parts of a chain, each in the order a backward visits it (its first node first), or nil
    /// when the outputs and cuts are not a chain. Branch i holds what roots[i] reaches without passing
    /// cuts[i], and cuts[i] (just cuts[i] when the root is the cut); trunk part i what cuts[i] reaches
    /// without passing cuts[i - 1], and cuts[i - 1]; trunk part 0 all that cuts[0] reaches. They are a
    /// chain when every part reaches the cut it stops at and no two parts share another node: then
    /// each cut is on every path from what lies above it to what lies below.
    private static func chainParts(roots: [Node], cuts: [Node]) -> (branches: [[Node]], trunk: [[Node]])? {
        var seen = Set<ObjectIdentifier>()
        func part(from root: Node, stop: Node?) -> [Node]? {
            let order = topologicalOrder(from: root, stop: stop)
            if let stop, !order.contains(where: { $0 === stop }) { return nil }
            for n in order where n !== stop {
                guard seen.insert(ObjectIdentifier(n)).inserted else { return nil }
            }
            return order.reversed()
        }
        var branches: [[Node]] = [], trunk: [[Node]] = []
        for i in roots.indices {
            guard let t = part(from: cuts[i], stop: i > 0 ? cuts[i - 1] : nil) else { return nil }
            trunk.append(t)
        }
        for i in roots.indices {
            guard let b = part(from: roots[i], stop: cuts[i]) else { return nil }
            branches.append(b)
        }
        return (branches, trunk)
    }

    /// One backward pass over `order` (reverse topological, its root first), seeded at the root.
    /// A `stop` node's rule is not run: its gradient is collected, cleared and returned (nil when
    /// none reached it). Without `retainGraph` every other node's rule and inputs are released.
    private static func run(_ order: [Node], seed: Tensor, stop: Node?, retainGraph: Bool) -> Tensor? {
        // Clear gradients left by an earlier pass over shared nodes (leaves keep theirs until read).
        for n in order where !n.isLeaf { n.grad = nil }
        order.first?.grad = seed
        for n in order {
            if n === stop { continue }
            guard let rule = n.rule, let d = n.grad else { continue }
            let grads = rule(d)
            precondition(grads.count == n.inputs.count, "backward: a rule returned \(grads.count) gradients for \(n.inputs.count) inputs")
            for (input, g) in zip(n.inputs, grads) {
                guard let g else { continue }
                precondition(g.shape.reduce(1, *) == input.shape.reduce(1, *),
                             "backward: gradient of shape \(g.shape) for an input of shape \(input.shape)")
                accumulate(into: input, g)
            }
            n.grad = nil
            if !retainGraph {
                n.rule = nil
                n.inputs = []
            }
        }
        guard let stop else { return nil }
        defer { stop.grad = nil }
        return stop.grad
    }

    /// The gradient collected by a leaf made with `requiringGrad()`, or zeros if none reached it.
    /// Reading it clears it, so a later backward starts from zero.
    public static func gradient(of leaf: Tensor) -> Tensor {
        guard let node = leaf.node, node.isLeaf else {
            preconditionFailure("gradient(of:) needs a tensor made by requiringGrad()")
        }
        defer { node.grad = nil }
        guard let g = node.grad else { return Tensor.zeros(leaf.shape) }
        return Tensor(shape: leaf.shape, storage: g.storage)
    }

    private static func accumulate(into node: Node, _ g: Tensor) {
        let g = g.detached()
        guard node.grad != nil else { node.grad = g; return }
        var held = node.grad!.storage
        node.grad = nil
        // The first gradient may be shared with another tensor (e.g. passed through an add): then the
        // sum goes to a fresh buffer. When nothing else holds it, the sum is written into it (the
        // same additions, existing + new).
        let n = held.count, b = UnsafePointer(g.data)
        if isKnownUniquelyReferenced(&held) {
            let a = held.pointer  // one pointer read and written, so the loop is vectorised
            parallelFor(n, grain: grainFor(n, minimum: 16384)) { r in
                for i in r { a[i] = a[i] + b[i] }
            }
            node.grad = Tensor(shape: node.shape, storage: held)
        } else {
            let sum = Tensor(uninitializedShape: node.shape)
            let a = UnsafePointer(held.pointer), o = sum.data
            parallelFor(n, grain: grainFor(n, minimum: 16384)) { r in
                for i in r { o[i] = a[i] + b[i] }
            }
            node.grad = sum
        }
    }

    /// Nodes `root` reaches, each after all its inputs (depth first, inputs in order); a `stop` node
    /// is listed but its inputs are not followed.
    private static func topologicalOrder(from root: Node, stop: Node? = nil) -> [Node] {
        var order: [Node] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Node, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (node, i) = stack.popLast() {
            if i < node.inputs.count && node !== stop {
                let child = node.inputs[i]
                stack.append((node, i + 1))
                if visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                order.append(node)
            }
        }
        return order
    }
}
